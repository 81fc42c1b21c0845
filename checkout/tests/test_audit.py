"""``audit_stock``: silent on a healthy shop, and each kind of drift reported with its ids when rows
are changed behind the services' back."""

import logging
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from checkout.audit import stock_audit_run
from checkout.models import StockAudit
from checkout.tasks import AUDIT_STOCK_TASK
from inventory.models import ReservedStock, Stock, StockMovement
from inventory.services import stock_count, stock_receive, stock_write_off
from inventory.tests.factories import ProductFactory
from orders.models import Order
from orders.services import order_cancel, order_complete, order_expire_overdue, order_fail, order_place
from payments.models import Payment

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(user, other_user):
    """A shop with an order in every state, stock received, written off and counted."""
    mug, cap = ProductFactory(on_hand=10), ProductFactory(on_hand=4)
    pending = order_place(
        user=user, lines=[{"product": mug.pk, "quantity": 2}, {"product": cap.pk, "quantity": 1}]
    )
    paid = order_place(user=other_user, lines=[{"product": mug.pk, "quantity": 3}])
    order_complete(order_id=paid.pk, capture_id="CAP-1")
    failed = order_place(user=user, lines=[{"product": cap.pk, "quantity": 2}])
    order_fail(order_id=failed.pk, reason="payment_declined")
    cancelled = order_place(user=user, lines=[{"product": mug.pk, "quantity": 1}])
    order_cancel(user=user, order_id=cancelled.pk)
    expired = order_place(user=other_user, lines=[{"product": cap.pk, "quantity": 1}])
    Order.objects.filter(pk=expired.pk).update(reserved_until="2000-01-01T00:00:00Z")
    order_expire_overdue()
    stock_receive(product_id=mug.pk, quantity=5)
    stock_write_off(product_id=cap.pk, quantity=1)
    stock_count(product_id=mug.pk, counted=11, expected_on_hand=12)
    return {"mug": mug, "cap": cap, "pending": pending, "paid": paid, "failed": failed}


def audit_codes() -> dict[str, list[int]]:
    return {drift.code: drift.ids for drift in stock_audit_run()}


def test_a_healthy_shop_has_no_drift(shop):
    assert audit_codes() == {}
    out = StringIO()
    call_command("audit_stock", stdout=out)
    assert "every invariant holds" in out.getvalue()
    assert StockAudit.objects.get().drift_count == 0


def corrupt_stock_bounds(shop):
    with connection.cursor() as cursor:  # the CHECK constraint would refuse it; this test removes it
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE inventory_stock DROP CONSTRAINT stock_reserved_within_on_hand")
    Stock.objects.filter(pk=shop["cap"].pk).update(reserved=50)
    return shop["cap"].pk


def corrupt_missing_stock_row(shop):
    product = ProductFactory(on_hand=0)
    Stock.objects.filter(pk=product.pk).delete()
    return product.pk


def corrupt_reserved(shop):
    Stock.objects.filter(pk=shop["mug"].pk).update(reserved=0)  # the pending order holds 2
    return shop["mug"].pk


def corrupt_on_hand(shop):
    Stock.objects.filter(pk=shop["mug"].pk).update(on_hand=30)  # sold units back on sale
    return shop["mug"].pk


def corrupt_missing_payment(shop):
    Payment.objects.filter(order=shop["failed"]).delete()
    return shop["failed"].pk


def corrupt_pending_holds(shop):
    ReservedStock.objects.filter(order=shop["pending"], product=shop["cap"]).update(quantity=3)
    return shop["pending"].pk


def corrupt_pending_payment(shop):
    Payment.objects.filter(order=shop["pending"]).update(status="FAILED")
    return shop["pending"].pk


def corrupt_paid_without_capture(shop):
    Payment.objects.filter(order=shop["paid"]).update(capture_id="")
    return shop["paid"].pk


def corrupt_failed_holds(shop):
    ReservedStock.objects.create(
        order=shop["failed"], product=shop["cap"], quantity=1, expires_at=shop["failed"].reserved_until
    )
    return shop["failed"].pk


def corrupt_failed_keeps_money(shop):
    Payment.objects.filter(order=shop["failed"]).update(capture_id="CAP-LATE", status="SUCCESS")
    return shop["failed"].pk


def corrupt_reconciliation_stuck(shop):
    Payment.objects.filter(order=shop["failed"]).update(capture_id="CAP-LATE", needs_reconciliation=True)
    Order.objects.filter(pk=shop["failed"].pk).update(completed_at="2000-01-01T00:00:00Z")
    return shop["failed"].pk


def corrupt_sale_missing(shop):
    StockMovement.objects.filter(order=shop["paid"], reason="sale").delete()
    return shop["paid"].pk


def corrupt_sale_on_failed(shop):
    StockMovement.objects.create(
        product=shop["cap"], delta=0, on_hand_after=3, reason="sale", order=shop["failed"]
    )
    return shop["failed"].pk


def corrupt_pending_forever(shop):
    Order.objects.filter(pk=shop["pending"].pk).update(reserved_until="2000-01-01T00:00:00Z")
    return shop["pending"].pk


@pytest.mark.parametrize(
    ("corrupt", "code"),
    [
        (corrupt_sale_missing, "paid_order_not_deducted_once"),
        (corrupt_sale_on_failed, "unpaid_order_deducted"),
        (corrupt_pending_forever, "pending_past_settle_deadline"),
        (corrupt_stock_bounds, "stock_out_of_bounds"),
        (corrupt_missing_stock_row, "product_without_stock"),
        (corrupt_reserved, "reserved_not_sum_of_holds"),
        (corrupt_on_hand, "ledger_not_on_hand"),
        (corrupt_missing_payment, "order_without_its_payment"),
        (corrupt_pending_holds, "pending_order_without_its_holds"),
        (corrupt_pending_payment, "pending_order_payment_not_pending"),
        (corrupt_paid_without_capture, "paid_order_without_capture"),
        (corrupt_failed_holds, "final_order_holds_stock"),
        (corrupt_failed_keeps_money, "failed_order_keeps_money"),
        (corrupt_reconciliation_stuck, "failed_order_keeps_money"),
    ],
)
def test_each_kind_of_drift_is_reported_with_its_ids(shop, corrupt, code):
    assert audit_codes() == {}
    culprit = corrupt(shop)
    stock_after_corruption = list(Stock.objects.order_by("pk").values_list("pk", "on_hand", "reserved"))

    assert audit_codes().get(code) == [culprit]

    err = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("audit_stock", stdout=StringIO(), stderr=err)
    assert failed.value.returncode == 1
    assert f"{code}: " in err.getvalue() and str(culprit) in err.getvalue()
    # It reports and never repairs.
    assert (
        list(Stock.objects.order_by("pk").values_list("pk", "on_hand", "reserved")) == stock_after_corruption
    )


def test_the_hourly_beat_task_is_registered_and_logs_each_drift(shop, caplog):
    from django_celery_beat.models import PeriodicTask

    from shop.celery import app

    task = PeriodicTask.objects.get(task=AUDIT_STOCK_TASK)
    assert task.enabled and (task.interval.every, task.interval.period) == (3600, "seconds")
    app.loader.import_default_modules()
    assert AUDIT_STOCK_TASK in app.tasks

    assert app.tasks[AUDIT_STOCK_TASK].apply().get() == 0
    corrupt_on_hand(shop)
    # Celery's Django fix-up ran django.setup() above, which reconfigured logging without caplog's handler.
    audit_logger = logging.getLogger("checkout.audit")
    audit_logger.addHandler(caplog.handler)
    try:
        assert app.tasks[AUDIT_STOCK_TASK].apply().get() == 1
    finally:
        audit_logger.removeHandler(caplog.handler)
    assert any("ledger_not_on_hand" in record.getMessage() for record in caplog.records)
    latest = StockAudit.objects.first()
    assert latest.drift_count == 1 and latest.drifts[0]["ids"] == [shop["mug"].pk]
    assert latest.drifts[0]["count"] == 1


def test_a_failed_order_being_reconciled_is_no_drift_yet(shop):
    """A capture that landed after the order failed is refunded by the next sweeps: not a drift until
    that has taken longer than the grace period (and a denied capture keeps its id: no money)."""
    Payment.objects.filter(order=shop["failed"]).update(capture_id="CAP-LATE", needs_reconciliation=True)
    assert audit_codes() == {}
    Payment.objects.filter(order=shop["failed"]).update(needs_reconciliation=False)  # PayPal: denied
    assert audit_codes() == {}
