from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inventory.lock_objects import stock_lock, stock_lock_available
from inventory.models import ReservedStock, Stock
from inventory.tests.factories import ProductFactory
from notifications.models import OutboxEvent
from orders.errors import IdempotencyConflict, InvalidOrder, OrderNotFound, OrderNotPending, OutOfStock
from orders.models import FailureReason, Order, OrderStatus
from orders.services import CompletionResult, order_cancel, order_complete, order_fail, order_place
from orders.tests.invariants import assert_invariants
from payments.models import Payment, PaymentStatus

pytestmark = pytest.mark.django_db


def stock(product):
    return Stock.objects.get(pk=product.pk)


def test_place_holds_stock_and_creates_pending_order_and_payment(user, settings):
    settings.RESERVATION_TTL_SECONDS = 600
    mug = ProductFactory(price=Decimal("12.50"), on_hand=10)
    tee = ProductFactory(price=Decimal("19.00"), on_hand=5)
    before = timezone.now()

    order = order_place(
        user=user, lines=[{"product": mug.pk, "quantity": 2}, {"product": tee.pk, "quantity": 1}]
    )

    assert order.status == OrderStatus.PENDING and order.failure_reason == ""
    assert order.total == Decimal("44.00") and order.currency == "USD"
    assert before + timedelta(seconds=600) <= order.reserved_until <= timezone.now() + timedelta(seconds=600)
    payment = Payment.objects.get(order=order)
    assert (payment.status, payment.transaction_id, payment.amount) == (
        "PENDING",
        order.transaction_id,
        order.total,
    )
    assert [(s.on_hand, s.reserved, s.available) for s in (stock(mug), stock(tee))] == [(10, 2, 8), (5, 1, 4)]
    holds = ReservedStock.objects.filter(order=order)
    assert {(h.product_id, h.quantity) for h in holds} == {(mug.pk, 2), (tee.pk, 1)}
    assert all(h.expires_at == order.reserved_until for h in holds)
    assert_invariants({mug.pk: 10, tee.pk: 5})


def test_duplicate_lines_are_merged_before_the_check(user):
    mug = ProductFactory(on_hand=3)
    with pytest.raises(OutOfStock) as error:
        order_place(user=user, lines=[{"product": mug.pk, "quantity": 2}, {"product": mug.pk, "quantity": 2}])
    assert error.value.data["items"] == [{"product": mug.pk, "requested": 4, "available": 3}]

    order = order_place(
        user=user, lines=[{"product": mug.pk, "quantity": 1}, {"product": mug.pk, "quantity": 2}]
    )
    assert [(line.product_id, line.quantity) for line in order.lines.all()] == [(mug.pk, 3)]
    assert stock(mug).reserved == 3


def test_short_stock_lists_every_short_line_and_writes_nothing(user):
    plenty = ProductFactory(on_hand=10)
    few = ProductFactory(on_hand=1)
    none = ProductFactory(on_hand=0)
    with pytest.raises(OutOfStock) as error:
        order_place(
            user=user,
            lines=[
                {"product": plenty.pk, "quantity": 2},
                {"product": few.pk, "quantity": 2},
                {"product": none.pk, "quantity": 1},
            ],
        )
    assert error.value.code == "out_of_stock"
    assert error.value.data["items"] == [
        {"product": few.pk, "requested": 2, "available": 1},
        {"product": none.pk, "requested": 1, "available": 0},
    ]
    assert not Order.objects.exists() and not Payment.objects.exists() and not ReservedStock.objects.exists()
    assert stock(plenty).reserved == 0


@pytest.mark.parametrize(
    "lines",
    [
        [],
        None,
        [{"product": 1, "quantity": 0}],
        [{"product": 1, "quantity": -2}],
        [{"product": 1, "quantity": 1.5}],
        [{"product": 1, "quantity": "2"}],
        [{"product": 1, "quantity": True}],
        [{"product": 1, "quantity": 10**9}],
        [{"product": "x", "quantity": 1}],
        [{"quantity": 1}],
        ["not a line"],
    ],
)
def test_service_rejects_bad_lines(user, lines):
    ProductFactory(on_hand=10)
    with pytest.raises(InvalidOrder) as error:
        order_place(user=user, lines=lines)
    assert error.value.code == "invalid" and error.value.message
    assert not Order.objects.exists()


def test_merged_quantity_over_the_maximum_is_rejected(user, settings):
    settings.ORDER_MAX_QUANTITY_PER_LINE = 5
    mug = ProductFactory(on_hand=100)
    with pytest.raises(InvalidOrder, match="At most 5 units") as error:
        order_place(user=user, lines=[{"product": mug.pk, "quantity": 3}, {"product": mug.pk, "quantity": 3}])
    assert error.value.code == "product_quantity_exceeded"


def test_unknown_and_inactive_products_are_rejected(user):
    hidden = ProductFactory(on_hand=10, is_active=False)
    with pytest.raises(InvalidOrder) as error:
        order_place(
            user=user, lines=[{"product": hidden.pk, "quantity": 1}, {"product": 999999, "quantity": 1}]
        )
    assert error.value.data["errors"]["lines"]["unknown_products"] == sorted([hidden.pk, 999999])
    assert stock(hidden).reserved == 0


def test_same_idempotency_key_returns_the_same_order(user, other_user):
    mug = ProductFactory(on_hand=10)
    lines = [{"product": mug.pk, "quantity": 2}]
    first = order_place(user=user, lines=lines, idempotency_key="key-1")
    again = order_place(user=user, lines=lines, idempotency_key="key-1")
    assert again.pk == first.pk
    assert stock(mug).reserved == 2
    # Keys are per user.
    theirs = order_place(user=other_user, lines=lines, idempotency_key="key-1")
    assert theirs.pk != first.pk
    with pytest.raises(IdempotencyConflict):
        order_place(user=user, lines=[{"product": mug.pk, "quantity": 3}], idempotency_key="key-1")


def test_complete_deducts_the_held_stock_once(user):
    mug = ProductFactory(on_hand=10)
    order = order_place(user=user, lines=[{"product": mug.pk, "quantity": 3}])

    assert order_complete(order_id=order.pk, capture_id="CAP-1", provider_response={"id": "CAP-1"}) == (
        CompletionResult.COMPLETED
    )
    assert order_complete(order_id=order.pk, capture_id="CAP-1") == CompletionResult.ALREADY_COMPLETED

    order.refresh_from_db()
    payment = order.payment
    assert (order.status, payment.status, payment.capture_id) == ("SUCCESS", "SUCCESS", "CAP-1")
    assert payment.provider_responses == [{"id": "CAP-1"}]
    assert (stock(mug).on_hand, stock(mug).reserved) == (7, 0)
    assert not ReservedStock.objects.exists()
    assert_invariants({mug.pk: 10})


def test_fail_returns_the_stock_and_is_idempotent(user):
    mug = ProductFactory(on_hand=10)
    order = order_place(user=user, lines=[{"product": mug.pk, "quantity": 4}])

    order_fail(order_id=order.pk, reason=FailureReason.PAYMENT_DECLINED)
    order_fail(order_id=order.pk, reason=FailureReason.GATEWAY_ERROR)

    order.refresh_from_db()
    assert (order.status, order.failure_reason, order.payment.status) == (
        "FAILED",
        "payment_declined",
        "FAILED",
    )
    assert (stock(mug).on_hand, stock(mug).reserved) == (10, 0)
    assert_invariants({mug.pk: 10})


def test_complete_on_a_failed_order_tells_the_caller_to_refund(user):
    mug = ProductFactory(on_hand=10)
    order = order_place(user=user, lines=[{"product": mug.pk, "quantity": 1}])
    order_fail(order_id=order.pk, reason=FailureReason.RESERVATION_EXPIRED)

    assert order_complete(order_id=order.pk, capture_id="LATE-1") == CompletionResult.ORDER_FAILED

    order.refresh_from_db()
    assert order.status == "FAILED" and order.payment.capture_id == "LATE-1"
    assert (stock(mug).on_hand, stock(mug).reserved) == (10, 0)


def test_fail_and_complete_do_nothing_after_success(user):
    mug = ProductFactory(on_hand=10)
    order = order_place(user=user, lines=[{"product": mug.pk, "quantity": 1}])
    order_complete(order_id=order.pk, capture_id="C")
    order_fail(order_id=order.pk, reason=FailureReason.RESERVATION_EXPIRED)
    order.refresh_from_db()
    assert order.status == "SUCCESS" and stock(mug).on_hand == 9
    assert_invariants({mug.pk: 10})


def test_cancel_by_shopper(user, other_user):
    mug = ProductFactory(on_hand=10)
    order = order_place(user=user, lines=[{"product": mug.pk, "quantity": 2}])

    with pytest.raises(OrderNotFound):
        order_cancel(user=other_user, order_id=order.pk)
    assert Order.objects.get(pk=order.pk).status == "PENDING"

    order_cancel(user=user, order_id=order.pk)
    order.refresh_from_db()
    assert (order.status, order.failure_reason) == ("FAILED", "cancelled_by_shopper")
    assert stock(mug).reserved == 0
    with pytest.raises(OrderNotPending):
        order_cancel(user=user, order_id=order.pk)


def test_unknown_failure_reason_is_refused_before_anything_changes(user):
    mug = ProductFactory(on_hand=10)
    order = order_place(user=user, lines=[{"product": mug.pk, "quantity": 2}])
    with pytest.raises(ValueError):
        order_fail(order_id=order.pk, reason="because")
    assert Order.objects.get(pk=order.pk).status == "PENDING"


def test_placement_query_count_does_not_grow_with_lines(user):
    def queries_for(lines_count):
        products = [ProductFactory(on_hand=10) for _ in range(lines_count)]
        with CaptureQueriesContext(connection) as queries:
            order_place(user=user, lines=[{"product": p.pk, "quantity": 1} for p in products])
        return len(queries)

    one, twenty = queries_for(1), queries_for(20)
    assert one == twenty, (one, twenty)


def test_settling_query_counts_do_not_grow_with_lines(user):
    def queries_for(lines_count, settle):
        products = [ProductFactory(on_hand=10) for _ in range(lines_count)]
        order = order_place(user=user, lines=[{"product": p.pk, "quantity": 1} for p in products])
        with CaptureQueriesContext(connection) as queries:
            settle(order)
        return len(queries)

    def complete(order):
        order_complete(order_id=order.pk, capture_id="C")

    def fail(order):
        order_fail(order_id=order.pk, reason="payment_declined")

    assert queries_for(1, complete) == queries_for(15, complete)
    assert queries_for(1, fail) == queries_for(15, fail)


def test_payment_for_every_order_even_when_payment_row_fails(user, monkeypatch):
    """An error after the order row was written rolls back the order, its lines and its holds."""
    mug = ProductFactory(on_hand=10)

    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Payment.objects, "create", broken)
    with pytest.raises(RuntimeError):
        order_place(user=user, lines=[{"product": mug.pk, "quantity": 2}])
    assert not Order.objects.exists() and not ReservedStock.objects.exists()
    assert stock(mug).reserved == 0
    assert Payment.objects.filter(status=PaymentStatus.PENDING).count() == 0


# --- What the suite must catch directly (issue 11) ---------------------------------------------------


def test_a_holds_expiry_is_the_configured_ttl_after_placement(user, settings, monkeypatch):
    settings.RESERVATION_TTL_SECONDS = 123
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)  # one instant for created_at and the hold
    mug, tee = ProductFactory(on_hand=5), ProductFactory(on_hand=5)

    order = order_place(
        user=user, lines=[{"product": mug.pk, "quantity": 1}, {"product": tee.pk, "quantity": 2}]
    )

    assert order.created_at == now
    assert order.reserved_until == now + timedelta(seconds=123)
    holds = list(ReservedStock.objects.filter(order=order))
    assert len(holds) == 2
    assert {hold.expires_at for hold in holds} == {order.created_at + timedelta(seconds=123)}


def test_order_fail_writes_the_outcome_to_the_outbox(user):
    mug = ProductFactory(on_hand=5)
    order = order_place(user=user, lines=[{"product": mug.pk, "quantity": 1}])

    order_fail(order_id=order.pk, reason=FailureReason.PAYMENT_DECLINED)
    order_fail(order_id=order.pk, reason=FailureReason.PAYMENT_DECLINED)  # a no-op: no second event

    (event,) = OutboxEvent.objects.filter(order=order)
    assert (event.type, event.key, event.published_at) == ("order.failed", str(order.pk), None)
    assert event.payload["reason"]["code"] == "payment_declined"
    assert event.payload["order"]["id"] == order.pk


def test_order_cancel_writes_the_outcome_to_the_outbox(user):
    mug = ProductFactory(on_hand=5)
    order = order_place(user=user, lines=[{"product": mug.pk, "quantity": 1}])

    order_cancel(user=user, order_id=order.pk)

    (event,) = OutboxEvent.objects.filter(order=order)
    assert event.type == "order.failed"
    assert event.payload["reason"]["code"] == "cancelled_by_shopper"


def test_stock_rows_are_locked_in_ascending_primary_key_order():
    """Two transactions locking overlapping products queue up instead of deadlocking only if every
    lock helper takes the rows in one order: ascending primary key."""
    ids = sorted(ProductFactory(on_hand=1).pk for _ in range(3))
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        locked = stock_lock(product_ids=list(reversed(ids)))
        skipping = stock_lock_available(product_ids=list(reversed(ids)))

    assert list(locked) == list(skipping) == ids
    sql = [query["sql"] for query in queries.captured_queries]
    assert len(sql) == 2
    for statement in sql:
        assert "FOR UPDATE" in statement
        assert 'ORDER BY "inventory_stock"."product_id" ASC' in statement, statement


def test_the_reservation_locks_the_stock_rows_in_ascending_primary_key_order(user):
    """Placement reserves with one conditional UPDATE for all its products, last in its transaction:
    the rows it updates are locked by its subquery in ascending primary key, as every lock helper does."""
    ids = sorted(ProductFactory(on_hand=1).pk for _ in range(3))
    with CaptureQueriesContext(connection) as queries:
        order_place(user=user, lines=[{"product": pk, "quantity": 1} for pk in reversed(ids)])

    statements = [query["sql"] for query in queries.captured_queries]
    (reserve,) = [sql for sql in statements if sql.startswith('UPDATE "inventory_stock"')]
    assert "ORDER BY 1 ASC FOR UPDATE" in reserve, reserve
    assert '"on_hand" >=' in reserve, reserve  # conditional: never more than there is
    # The last statement before the transaction (a savepoint under the test's transaction) ends.
    assert statements[-2:] == [reserve, statements[-1]] and statements[-1].startswith("RELEASE SAVEPOINT")
    assert not any("FOR UPDATE" in sql for sql in statements if sql != reserve and "inventory_stock" in sql)
