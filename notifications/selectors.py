"""Reads of the notifications app."""

from django.db.models import QuerySet

from notifications.models import EmailDelivery, OutboxEvent
from payments.models import Payment, PaymentStatus


def outbox_unpublished() -> QuerySet[OutboxEvent]:
    return OutboxEvent.objects.filter(published_at__isnull=True).order_by("id")


def outbox_has_unpublished() -> bool:
    return outbox_unpublished().exists()


def outbox_events_for_order(*, order_id: int) -> QuerySet[OutboxEvent]:
    return OutboxEvent.objects.filter(order_id=order_id).order_by("id")


def email_deliveries_for_order(*, order_id: int) -> QuerySet[EmailDelivery]:
    return EmailDelivery.objects.filter(order_id=order_id).order_by("id")


def order_payment_refunded(*, order_id: int) -> bool:
    """Whether the money of this order went back to the shopper (a late capture that was refunded).

    Read from the database, not from the caller's objects: the refund may have been saved through
    another instance, or set-based.
    """
    return Payment.objects.filter(order_id=order_id, status=PaymentStatus.REFUNDED).exists()


def orders_payment_refunded(*, order_ids) -> set[int]:
    """Which of these orders had their money refunded."""
    return set(
        Payment.objects.filter(order_id__in=list(order_ids), status=PaymentStatus.REFUNDED).values_list(
            "order_id", flat=True
        )
    )
