"""Reads of the notifications app."""

from django.db.models import QuerySet

from notifications.models import EmailDelivery, OutboxEvent


def outbox_unpublished() -> QuerySet[OutboxEvent]:
    return OutboxEvent.objects.filter(published_at__isnull=True).order_by("id")


def outbox_has_unpublished() -> bool:
    return outbox_unpublished().exists()


def outbox_events_for_order(*, order_id: int) -> QuerySet[OutboxEvent]:
    return OutboxEvent.objects.filter(order_id=order_id).order_by("id")


def email_deliveries_for_order(*, order_id: int) -> QuerySet[EmailDelivery]:
    return EmailDelivery.objects.filter(order_id=order_id).order_by("id")
