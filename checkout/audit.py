"""The audit of the shop's invariants (DESIGN.md): it reads, reports each drift with the ids
involved, and never repairs anything on its own.

Every check is one query (one snapshot), whatever the number of products and orders. A shop at rest reports
nothing; rows changed behind the services' back show up here.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from checkout.models import StockAudit
from inventory.models import Product, ReservedStock, Stock, StockMovement
from orders.models import Order, OrderLine, OrderStatus
from payments.models import Payment, PaymentStatus

logger = logging.getLogger(__name__)

SHOWN_IDS = 50  # ids printed per drift; the count says how many there are
KEPT_IDS = 1000  # ids kept per drift in a stored result


@dataclass(frozen=True)
class Drift:
    code: str
    message: str
    ids: list[int]

    def __str__(self):
        shown = ", ".join(str(pk) for pk in self.ids[:SHOWN_IDS])
        more = f" and {len(self.ids) - SHOWN_IDS} more" if len(self.ids) > SHOWN_IDS else ""
        return f"{self.code}: {self.message} ({len(self.ids)}): {shown}{more}"


def _sum_of(queryset, field: str) -> Subquery:
    """SUM(field) of ``queryset`` (already filtered on OuterRef), 0 when there is no row."""
    grouped = queryset.order_by().annotate(group=Value(1)).values("group").annotate(total=Sum(field))
    return Coalesce(Subquery(grouped.values("total")[:1], output_field=IntegerField()), 0)


def _count_of(queryset) -> Subquery:
    grouped = queryset.order_by().annotate(group=Value(1)).values("group").annotate(n=Count("pk"))
    return Coalesce(Subquery(grouped.values("n")[:1], output_field=IntegerField()), 0)


def _ids(queryset) -> list[int]:
    return list(queryset.order_by("pk").values_list("pk", flat=True))


def _stock_checks() -> list[Drift]:
    stocks = Stock.objects.annotate(
        held=_sum_of(ReservedStock.objects.filter(product_id=OuterRef("pk")), "quantity"),
        ledger=_sum_of(StockMovement.objects.filter(product_id=OuterRef("pk")), "delta"),
    )
    return [
        Drift(
            "stock_out_of_bounds",
            "products whose stock breaks 0 <= reserved <= on_hand",
            _ids(Stock.objects.filter(Q(reserved__lt=0) | Q(on_hand__lt=0) | Q(reserved__gt=F("on_hand")))),
        ),
        Drift(
            "product_without_stock", "products without a stock row", _ids(Product.objects.filter(stock=None))
        ),
        Drift(
            "reserved_not_sum_of_holds",
            "products whose reserved units differ from the sum of their holds",
            _ids(stocks.exclude(reserved=F("held"))),
        ),
        Drift(
            "ledger_not_on_hand",
            "products whose stock ledger does not add up to on_hand",
            _ids(stocks.exclude(on_hand=F("ledger"))),
        ),
    ]


def _sale_checks() -> list[Drift]:
    """A paid order had its stock deducted exactly once: one sale movement per line, of its quantity.
    (Orders paid before the ledger existed have none; they are not judged.)"""
    opened = StockMovement.objects.order_by("created_at").values_list("created_at", flat=True).first()
    if opened is None:
        return []
    sold = StockMovement.objects.filter(
        order_id=OuterRef("order_id"), product_id=OuterRef("product_id"), reason="sale"
    )
    lines = OrderLine.objects.filter(
        order__status=OrderStatus.SUCCESS, order__completed_at__gte=opened
    ).annotate(deducted=_sum_of(sold, "delta"))
    return [
        Drift(
            "paid_order_not_deducted_once",
            "paid orders whose lines were not deducted from stock exactly once",
            sorted(set(lines.exclude(deducted=-F("quantity")).values_list("order_id", flat=True))),
        ),
        Drift(
            "unpaid_order_deducted",
            "orders that are not paid but have sales in the stock ledger",
            _ids(
                Order.objects.exclude(status=OrderStatus.SUCCESS).filter(
                    Exists(StockMovement.objects.filter(order_id=OuterRef("pk"), reason="sale"))
                )
            ),
        ),
    ]


def _order_checks() -> list[Drift]:
    grace = timedelta(seconds=settings.PAYPAL_SETTLE_GRACE_SECONDS)
    lines = OrderLine.objects.filter(order_id=OuterRef("pk"))
    holds = ReservedStock.objects.filter(order_id=OuterRef("pk"))
    matching_holds = holds.filter(
        Exists(
            OrderLine.objects.filter(
                order_id=OuterRef("order_id"),
                product_id=OuterRef("product_id"),
                quantity=OuterRef("quantity"),
            )
        )
    )
    pending = Order.objects.filter(status=OrderStatus.PENDING).annotate(
        lines_n=_count_of(lines), holds_n=_count_of(holds), matching_n=_count_of(matching_holds)
    )
    payment = Payment.objects.filter(order_id=OuterRef("pk"))
    return [
        Drift(
            "order_without_its_payment",
            "orders without a payment of the same transaction id",
            _ids(Order.objects.exclude(Exists(payment.filter(transaction_id=OuterRef("transaction_id"))))),
        ),
        Drift(
            "pending_order_without_its_holds",
            "pending orders whose holds are not exactly their lines",
            _ids(pending.exclude(lines_n=F("holds_n"), matching_n=F("lines_n"))),
        ),
        Drift(
            "pending_order_payment_not_pending",
            "pending orders whose payment is not pending",
            _ids(
                Order.objects.filter(status=OrderStatus.PENDING).exclude(
                    payment__status=PaymentStatus.PENDING
                )
            ),
        ),
        Drift(
            "paid_order_without_capture",
            "paid orders without a captured payment",
            _ids(
                Order.objects.filter(status=OrderStatus.SUCCESS).exclude(
                    Q(payment__status__in=[PaymentStatus.SUCCESS, PaymentStatus.REFUNDED])
                    & ~Q(payment__capture_id="")
                )
            ),
        ),
        Drift(
            "pending_past_settle_deadline",
            "pending orders past their hold plus PAYPAL_SETTLE_GRACE_SECONDS",
            _ids(
                Order.objects.filter(
                    status=OrderStatus.PENDING,
                    reserved_until__lt=timezone.now()
                    - timedelta(seconds=settings.PAYPAL_SETTLE_GRACE_SECONDS),
                )
            ),
        ),
        Drift(
            "final_order_holds_stock",
            "paid or failed orders that still hold stock",
            _ids(Order.objects.exclude(status=OrderStatus.PENDING).filter(Exists(holds))),
        ),
        Drift(
            "failed_order_keeps_money",
            "failed orders whose payment is captured, or may hold money that reconciliation has not "
            "refunded within PAYPAL_SETTLE_GRACE_SECONDS",
            _ids(
                Order.objects.filter(status=OrderStatus.FAILED).filter(
                    Q(payment__status=PaymentStatus.SUCCESS)
                    # Flagged payments are checked with PayPal by every sweep (a capture that landed
                    # late, one whose answer was lost): a drift only once that has taken too long.
                    | Q(payment__needs_reconciliation=True, completed_at__lt=timezone.now() - grace)
                )
            ),
        ),
    ]


def stock_audit_run() -> list[Drift]:
    """Check every invariant once; answers the drifts found (an empty list when all hold).

    Each check is one statement, so it reads one consistent snapshot: a placement or a payment
    committing meanwhile (stock counters and holds change in one transaction) is seen whole or not
    at all, and a busy shop reports nothing.
    """
    return [drift for drift in (*_stock_checks(), *_sale_checks(), *_order_checks()) if drift.ids]


def stock_audit_record(*, drifts: list[Drift]) -> StockAudit:
    """Keep the result for staff (the last one is shown in the admin); log each drift as an error.
    Results older than ``OUTBOX_RETENTION_DAYS`` are deleted; at most ``KEPT_IDS`` ids are kept per drift."""
    for drift in drifts:
        logger.error("stock audit: %s", drift)
    StockAudit.objects.filter(
        ran_at__lt=timezone.now() - timedelta(days=settings.OUTBOX_RETENTION_DAYS)
    ).delete()
    kept = [{**asdict(drift), "ids": drift.ids[:KEPT_IDS], "count": len(drift.ids)} for drift in drifts]
    return StockAudit.objects.create(drift_count=len(drifts), drifts=kept)
