"""The invariants of DESIGN.md, checked against the database as it is."""

from collections import defaultdict

from django.db.models import Sum

from checkout.audit import stock_audit_run
from inventory.models import ReservedStock, Stock
from orders.models import Order, OrderLine, OrderStatus
from payments.models import Payment, PaymentStatus

PAYMENT_FOR_ORDER = {
    OrderStatus.PENDING: {PaymentStatus.PENDING},
    # REFUNDED: refunded in full after the sale (by staff, or from PayPal's dashboard).
    OrderStatus.SUCCESS: {PaymentStatus.SUCCESS, PaymentStatus.REFUNDED},
    OrderStatus.FAILED: {PaymentStatus.FAILED, PaymentStatus.REFUNDED},
}


def assert_invariants(initial_on_hand: dict[int, int]) -> None:
    """``initial_on_hand``: each product's on-hand count before any order touched it."""
    holds = dict(
        ReservedStock.objects.values("product_id").annotate(q=Sum("quantity")).values_list("product_id", "q")
    )
    sold = defaultdict(int)
    for product_id, quantity in OrderLine.objects.filter(order__status=OrderStatus.SUCCESS).values_list(
        "product_id", "quantity"
    ):
        sold[product_id] += quantity

    for stock in Stock.objects.filter(pk__in=list(initial_on_hand)):
        assert 0 <= stock.reserved <= stock.on_hand, stock
        assert stock.reserved == holds.get(stock.pk, 0), f"reserved of {stock.pk} is not the sum of its holds"
        # A SUCCESS order had its stock deducted exactly once.
        assert stock.on_hand == initial_on_hand[stock.pk] - sold[stock.pk], f"on_hand of {stock.pk}"

    payments = {p.order_id: p for p in Payment.objects.all()}
    for order in Order.objects.prefetch_related("lines", "holds"):
        payment = payments.get(order.pk)
        assert payment is not None, f"{order} has no payment"
        assert payment.transaction_id == order.transaction_id
        assert payment.status in PAYMENT_FOR_ORDER[order.status], (order, payment)
        if payment.status == PaymentStatus.SUCCESS:  # partly refunded at most
            assert payment.capture_id and 0 <= payment.refunded_amount < payment.amount, payment
        if payment.status == PaymentStatus.REFUNDED:
            assert payment.capture_id and payment.refunded_amount > 0 and not payment.needs_reconciliation, (
                payment.capture_id,
                payment.refunded_amount,
                payment.needs_reconciliation,
                order.failure_reason,
            )
        if payment.status == PaymentStatus.PENDING:
            assert payment.refunded_amount == 0 and not payment.needs_reconciliation, payment
        held = {hold.product_id: hold.quantity for hold in order.holds.all()}
        if order.status == OrderStatus.PENDING:
            assert held == {line.product_id: line.quantity for line in order.lines.all()}, order
        else:
            assert held == {}, f"{order} still holds stock"
        assert bool(order.failure_reason) == (order.status == OrderStatus.FAILED)
    # The shop's own auditor agrees: it finds no drift where these checks found none. (Whether an
    # order is pending past its deadline depends on the clock and the sweeps: the tests that move
    # the clock check that themselves.)
    drifts = [drift for drift in stock_audit_run() if drift.code != "pending_past_settle_deadline"]
    assert drifts == [], [str(d) for d in drifts]
