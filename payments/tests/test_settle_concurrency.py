"""The expiry sweep settles PayPal-backed orders on PAYPAL_SETTLE_CONCURRENCY threads: the real SDK
against the simulator, PostgreSQL, and threads with their own connections (hence committed data)."""

import threading
import time

import pytest
from django.db import connection, transaction

import payments.expiry
from inventory.models import Stock
from orders.lock_objects import order_lock
from orders.models import Order
from orders.services import CompletionResult, order_complete
from orders.tests.invariants import assert_invariants
from payments.expiry import payment_expire_overdue
from payments.tests.factories import ProductFactory, UserFactory, available, expire, start_order

pytestmark = pytest.mark.django_db(transaction=True)


def expired_paypal_orders(count, product):
    orders = [start_order(user=UserFactory(), lines=[(product, 1)]) for _ in range(count)]
    for order in orders:
        expire(order)
    return orders


def backends_of_this_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def wait_for(condition, *, seconds=15, what=""):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_orders_are_settled_at_once_and_one_failing_order_does_not_stop_the_others(
    paypal, settings, monkeypatch
):
    settings.PAYPAL_SETTLE_CONCURRENCY = 3
    mug = ProductFactory(on_hand=20)
    orders = expired_paypal_orders(8, mug)
    approved, broken = orders[2], orders[5]
    paypal.approve(approved.payment.provider_order_id)
    # PayPal fails every request about one order for the whole sweep.
    paypal.fail(100, mode="status", status=503, match=broken.payment.provider_order_id)
    backends_before = backends_of_this_database()

    # The first two orders taken wait for each other: one at a time, neither would ever settle.
    both_in_flight = threading.Barrier(2, timeout=20)
    threads_used = set()
    real_settle = payments.expiry.payment_settle_expired

    def settle(*, order_id, now):
        threads_used.add(threading.current_thread().name)
        if order_id in (orders[0].pk, orders[1].pk):
            both_in_flight.wait()
        return real_settle(order_id=order_id, now=now)

    monkeypatch.setattr(payments.expiry, "payment_settle_expired", settle)
    sweep = payment_expire_overdue()

    settled = [order.pk for order in orders if order is not broken]
    assert sweep.with_provider == [order.pk for order in orders]
    assert sweep.settled_with_provider == settled
    assert len(threads_used) > 1 and all(name.startswith("paypal-settle") for name in threads_used)
    statuses = dict(Order.objects.values_list("pk", "status"))
    assert statuses[approved.pk] == "SUCCESS"  # asked PayPal, found it approved, captured it
    assert statuses[broken.pk] == "PENDING"  # left for the next sweep, its stock still held
    assert all(statuses[pk] == "FAILED" for pk in settled if pk != approved.pk)
    assert available(mug) == 20 - 1 - 1  # one sold, one still held
    assert_invariants({mug.pk: 20})
    # Each thread closed its connection when it was done.
    wait_for(lambda: backends_of_this_database() <= backends_before, what="the threads' connections to close")

    paypal.server.state.failures.clear()
    assert payment_expire_overdue().settled_with_provider == [broken.pk]
    assert Order.objects.get(pk=broken.pk).status == "FAILED" and available(mug) == 19


def test_an_order_whose_capture_is_in_flight_is_skipped_not_waited_on_nor_undone(
    paypal, settings, monkeypatch
):
    """A capture takes an order's row lock after the sweep listed the order: the settling threads
    pass it by (SKIP LOCKED) and settle the others; the capture then completes it."""
    settings.PAYPAL_SETTLE_CONCURRENCY = 4
    mug = ProductFactory(on_hand=10)
    orders = expired_paypal_orders(4, mug)
    capturing = orders[1]
    locked, sweep_done = threading.Event(), threading.Event()
    outcome = {}

    def capture_in_flight():
        try:
            with transaction.atomic():
                order_lock(order_id=capturing.pk)
                locked.set()
                outcome["sweep finished while the lock was held"] = sweep_done.wait(30)
                outcome["status under the lock"] = Order.objects.get(pk=capturing.pk).status
                outcome["capture"] = order_complete(order_id=capturing.pk, capture_id="CAP-IN-FLIGHT")
        finally:
            connection.close()

    real_listing = payments.expiry.order_expire_overdue
    capturer = threading.Thread(target=capture_in_flight)

    def listing_then_a_capture_starts(**kwargs):
        sweep = real_listing(**kwargs)
        capturer.start()
        assert locked.wait(10)
        return sweep

    monkeypatch.setattr(payments.expiry, "order_expire_overdue", listing_then_a_capture_starts)
    sweep = payment_expire_overdue()
    sweep_done.set()
    capturer.join(30)

    assert capturing.pk in sweep.with_provider and capturing.pk not in sweep.settled_with_provider
    assert outcome == {
        "sweep finished while the lock was held": True,
        "status under the lock": "PENDING",
        "capture": CompletionResult.COMPLETED,
    }
    assert sweep.settled_with_provider == [order.pk for order in orders if order is not capturing]
    assert Order.objects.get(pk=capturing.pk).status == "SUCCESS"
    assert (Stock.objects.get(pk=mug.pk).on_hand, available(mug)) == (9, 9)
    assert_invariants({mug.pk: 10})


def test_concurrency_below_one_is_refused(settings):
    with pytest.raises(ValueError, match="concurrency must be 1 or more"):
        payment_expire_overdue(concurrency=-1)
