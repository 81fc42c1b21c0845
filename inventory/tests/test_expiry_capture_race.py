"""The expiry sweep racing a real capture (PayPal SDK against the simulator), on threads and PostgreSQL.

Whatever the interleaving, the order never ends with its stock released and its money kept: it is
SUCCESS with its stock deducted once and one capture at PayPal, or FAILED with its capture refunded.
"""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from inventory.models import ReservedStock, Stock
from inventory.tests.factories import ProductFactory
from orders.models import Order
from orders.services import order_place
from orders.tests.factories import UserFactory
from orders.tests.invariants import assert_invariants
from payments.expiry import payment_expire_overdue
from payments.services import payment_capture, payment_start

pytestmark = pytest.mark.django_db(transaction=True)


def approved_and_expired_order(paypal, product):
    order = order_place(user=UserFactory(), lines=[{"product": product.pk, "quantity": 1}])
    payment = payment_start(order_id=order.pk)
    paypal.approve(payment.provider_order_id)
    past = timezone.now() - timedelta(seconds=1)
    Order.objects.filter(pk=order.pk).update(reserved_until=past)
    ReservedStock.objects.filter(order=order).update(expires_at=past)
    return order, payment.provider_order_id


def captures_at_paypal(paypal, provider_order_id):
    return paypal.order(provider_order_id)["capture_ids"]


def assert_no_money_kept_without_goods(order_id, paypal, provider_order_id):
    order = Order.objects.select_related("payment").get(pk=order_id)
    captures = captures_at_paypal(paypal, provider_order_id)
    if order.status == "SUCCESS":
        assert order.payment.status == "SUCCESS"
        assert len(captures) == 1
    else:
        assert order.status == "FAILED"
        assert order.payment.status in {"FAILED", "REFUNDED"}
        assert order.payment.status == "REFUNDED" or not captures, "money kept on a failed order"


def run_threads(*targets):
    def wrapped(target):
        def run():
            try:
                target()
            finally:
                connection.close()

        return run

    threads = [threading.Thread(target=wrapped(target)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)


def test_sweep_during_a_slow_capture_skips_the_order(paypal):
    """PayPal takes its time to answer the capture; the sweep runs meanwhile and must not release
    the hold under it."""
    product = ProductFactory(on_hand=3)
    order, provider_order_id = approved_and_expired_order(paypal, product)
    paypal.fail(1, mode="delay", seconds=1.5, match="/capture")
    capture_started = threading.Event()
    sweeps = []

    def capture():
        capture_started.set()
        payment_capture(order_id=order.pk)

    def sweep():
        assert capture_started.wait(10)
        # Give the capture thread its row lock before sweeping (it is held for the 1.5 s answer).
        deadline = time.monotonic() + 5
        while not _order_row_locked(order.pk):
            assert time.monotonic() < deadline, "the capture never took the order's row lock"
            time.sleep(0.01)
        sweeps.append(payment_expire_overdue())

    run_threads(capture, sweep)

    assert order.pk not in sweeps[0].released and order.pk not in sweeps[0].settled_with_provider
    assert Order.objects.get(pk=order.pk).status == "SUCCESS"
    assert (Stock.objects.get(pk=product.pk).on_hand, Stock.objects.get(pk=product.pk).reserved) == (2, 0)
    assert_no_money_kept_without_goods(order.pk, paypal, provider_order_id)
    assert_invariants({product.pk: 3})


def _order_row_locked(order_id):
    """Another session holds a FOR UPDATE lock on the orders table (the capture, on its order)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = 'orders_order' AND l.mode = 'RowShareLock' AND l.pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.parametrize("attempt", range(4))
def test_capture_and_sweep_started_together_settle_the_order_once(paypal, attempt):
    product = ProductFactory(on_hand=2)
    order, provider_order_id = approved_and_expired_order(paypal, product)
    barrier = threading.Barrier(2)
    errors = []

    def capture():
        barrier.wait(10)
        try:
            payment_capture(order_id=order.pk)
        except Exception as error:  # a refusal is fine; the assertions below judge the outcome
            errors.append(error)

    def sweep():
        barrier.wait(10)
        payment_expire_overdue()

    run_threads(capture, sweep)

    # The PayPal order was approved: whoever got the row first captured it, the other saw it done.
    assert Order.objects.get(pk=order.pk).status == "SUCCESS", errors
    assert_no_money_kept_without_goods(order.pk, paypal, provider_order_id)
    assert_invariants({product.pk: 2})
