import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inventory.models import ReservedStock, Stock
from inventory.tests.factories import ProductFactory
from orders.errors import OutOfStock
from orders.lock_objects import order_lock
from orders.models import Order
from orders.services import CompletionResult, order_complete, order_expire_overdue, order_place
from orders.tests.factories import UserFactory
from orders.tests.invariants import assert_invariants
from payments.models import Payment
from payments.tasks import RELEASE_EXPIRED_TASK


def stock(product):
    return Stock.objects.get(pk=product.pk)


def expire(order):
    """Move an order's hold into the past, as if its time had run out."""
    past = timezone.now() - timedelta(seconds=1)
    Order.objects.filter(pk=order.pk).update(reserved_until=past)
    ReservedStock.objects.filter(order=order).update(expires_at=past)


@pytest.mark.django_db
def test_an_expired_hold_fails_the_order_and_returns_the_stock(user, settings):
    settings.RESERVATION_TTL_SECONDS = 900
    mug = ProductFactory(on_hand=5)
    order = order_place(user=user, lines=[{"product": mug.pk, "quantity": 3}])

    early = order_expire_overdue(now=order.reserved_until - timedelta(seconds=1))
    assert early.released == [] and Order.objects.get(pk=order.pk).status == "PENDING"

    sweep = order_expire_overdue(now=order.created_at + timedelta(seconds=901))

    assert sweep.released == [order.pk]
    order.refresh_from_db()
    assert (order.status, order.failure_reason, order.payment.status) == (
        "FAILED",
        "reservation_expired",
        "FAILED",
    )
    assert (stock(mug).on_hand, stock(mug).reserved) == (5, 0)
    assert not ReservedStock.objects.exists()
    assert_invariants({mug.pk: 5})


@pytest.mark.django_db
def test_the_command_runs_the_same_sweep(user, capsys):
    mug = ProductFactory(on_hand=5)
    expired = order_place(user=user, lines=[{"product": mug.pk, "quantity": 1}])
    live = order_place(user=user, lines=[{"product": mug.pk, "quantity": 1}])
    expire(expired)

    call_command("release_expired_reservations")

    assert "released 1 expired orders" in capsys.readouterr().out
    assert Order.objects.get(pk=expired.pk).failure_reason == "reservation_expired"
    assert Order.objects.get(pk=live.pk).status == "PENDING"
    assert stock(mug).reserved == 1


@pytest.mark.django_db
def test_the_periodic_task_is_registered_and_the_worker_has_it(user):
    from django_celery_beat.models import PeriodicTask

    from shop.celery import app

    task = PeriodicTask.objects.get(task=RELEASE_EXPIRED_TASK)
    assert task.enabled and task.interval.every == 60 and task.interval.period == "seconds"
    app.loader.import_default_modules()
    assert RELEASE_EXPIRED_TASK in app.tasks

    mug = ProductFactory(on_hand=2)
    order = order_place(user=user, lines=[{"product": mug.pk, "quantity": 2}])
    expire(order)
    result = app.tasks[RELEASE_EXPIRED_TASK].apply().get()
    assert result == {"released": 1, "settled_with_provider": 0}
    assert stock(mug).reserved == 0


@pytest.mark.django_db
def test_reserved_until_is_the_configured_ttl(user, settings, auth_client):
    settings.RESERVATION_TTL_SECONDS = 120
    mug = ProductFactory(on_hand=5)
    order = order_place(user=user, lines=[{"product": mug.pk, "quantity": 1}])
    assert timedelta(seconds=119) < order.reserved_until - order.created_at <= timedelta(seconds=121)
    body = auth_client.get(f"/api/orders/{order.pk}/").json()
    assert body["reserved_until"].startswith(order.reserved_until.strftime("%Y-%m-%dT%H:%M"))


@pytest.mark.django_db
def test_placement_releases_expired_holds_when_it_needs_the_stock(user, other_user):
    """Beat is down: the hold expired but nobody released it. A shopper who needs that stock gets it."""
    cap = ProductFactory(on_hand=2)
    mug = ProductFactory(on_hand=5)
    stale = order_place(
        user=other_user, lines=[{"product": cap.pk, "quantity": 2}, {"product": mug.pk, "quantity": 1}]
    )
    fresh = order_place(user=other_user, lines=[{"product": mug.pk, "quantity": 1}])
    expire(stale)

    order = order_place(user=user, lines=[{"product": cap.pk, "quantity": 2}])

    assert order.status == "PENDING"
    assert Order.objects.get(pk=stale.pk).failure_reason == "reservation_expired"
    assert Order.objects.get(pk=fresh.pk).status == "PENDING"
    assert (stock(cap).reserved, stock(mug).reserved) == (2, 1)
    assert_invariants({cap.pk: 2, mug.pk: 5})


@pytest.mark.django_db
def test_placement_does_not_release_live_holds(user, other_user):
    cap = ProductFactory(on_hand=1)
    order_place(user=other_user, lines=[{"product": cap.pk, "quantity": 1}])
    with pytest.raises(OutOfStock):
        order_place(user=user, lines=[{"product": cap.pk, "quantity": 1}])


@pytest.mark.django_db(transaction=True)
def test_the_sweep_never_releases_a_hold_under_a_capture_in_flight():
    """A capture holds its order's row lock while PayPal answers. The sweep skips that order (SKIP
    LOCKED) instead of failing it, so the capture completes with its stock still held."""
    user = UserFactory()
    mug = ProductFactory(on_hand=3)
    order = order_place(user=user, lines=[{"product": mug.pk, "quantity": 2}])
    expire(order)
    capture_started, sweep_done = threading.Event(), threading.Event()
    outcome = {}

    def capture_in_flight():
        try:
            with transaction.atomic():
                order_lock(order_id=order.pk)
                capture_started.set()
                assert sweep_done.wait(30)  # PayPal is slow to answer the capture
                outcome["result"] = order_complete(order_id=order.pk, capture_id="CAP-RACE")
        finally:
            connection.close()

    capturer = threading.Thread(target=capture_in_flight)
    capturer.start()
    assert capture_started.wait(10)
    sweep = order_expire_overdue()
    sweep_done.set()
    capturer.join(30)

    assert order.pk not in sweep.released
    assert outcome["result"] == CompletionResult.COMPLETED
    order.refresh_from_db()
    assert order.status == "SUCCESS" and order.payment.status == "SUCCESS"
    assert (stock(mug).on_hand, stock(mug).reserved) == (1, 0)
    assert_invariants({mug.pk: 3})


def make_expired_orders(count, products):
    """``count`` pending orders of one unit each, already expired, written in bulk."""
    user = UserFactory()
    past = timezone.now() - timedelta(minutes=1)
    orders = Order.objects.bulk_create(
        Order(user=user, total=products[0].price, currency="USD", reserved_until=past) for _ in range(count)
    )
    Payment.objects.bulk_create(
        Payment(order=o, transaction_id=o.transaction_id, amount=o.total, currency="USD") for o in orders
    )
    ReservedStock.objects.bulk_create(
        ReservedStock(order=o, product=products[i % len(products)], quantity=1, expires_at=past)
        for i, o in enumerate(orders)
    )
    from orders.models import OrderLine

    OrderLine.objects.bulk_create(
        OrderLine(
            order=o, product=products[i % len(products)], product_name="p", quantity=1, unit_price=o.total
        )
        for i, o in enumerate(orders)
    )
    for product in products:
        Stock.objects.filter(pk=product.pk).update(reserved=count // len(products))
    return orders


@pytest.mark.django_db
def test_ten_thousand_expired_holds_cost_the_same_queries_per_batch():
    products = [ProductFactory(on_hand=2000) for _ in range(5)]

    make_expired_orders(1, products[:1])
    with CaptureQueriesContext(connection) as one:
        single = order_expire_overdue(batch_size=500)
    assert (len(single.released), single.batches) == (1, 1)
    per_batch = len(one)

    Stock.objects.update(reserved=0)
    make_expired_orders(10_000, products)
    with CaptureQueriesContext(connection) as many:
        sweep = order_expire_overdue(batch_size=500)

    assert len(sweep.released) == 10_000 and sweep.batches == 20
    # A batch of 500 costs what a batch of 1 costs: nothing is done per hold or per order. The one
    # extra batch is the empty look-up that ends the sweep.
    assert len(many) <= per_batch * (sweep.batches + 1), (len(many), per_batch)
    assert not ReservedStock.objects.exists()
    assert all(s.reserved == 0 and s.on_hand == 2000 for s in Stock.objects.all())
    assert Order.objects.filter(status="FAILED", failure_reason="reservation_expired").count() == 10_001
