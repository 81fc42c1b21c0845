import uuid

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class EventType(models.TextChoices):
    ORDER_SUCCEEDED = "order.succeeded", _("Order succeeded")
    ORDER_FAILED = "order.failed", _("Order failed")


class OutboxEvent(models.Model):
    """An outcome event written in the transaction that made its order final.

    The relay publishes it to Kafka after that transaction committed; ``published_at`` is set only
    once the broker acknowledged it, so a broker outage delays an email but never loses one.
    """

    event_id = models.UUIDField(_("event id"), default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(_("type"), max_length=32, choices=EventType.choices)
    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, related_name="outbox_events", verbose_name=_("order")
    )
    # The Kafka message key: the order id, so that the events of one order stay in one partition.
    key = models.CharField(_("key"), max_length=64)
    payload = models.JSONField(_("payload"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    published_at = models.DateTimeField(_("published at"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("publish attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    # The id of the request (or Celery task) that recorded the outcome (core/logs.py): sent with the
    # message as the Kafka header ``request_id``, so the consumer's lines carry it too.
    request_id = models.CharField(_("request id"), max_length=128, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        verbose_name = _("outbox event")
        verbose_name_plural = _("outbox events")
        indexes = [
            # The relay's query: only the (few) rows still waiting are indexed.
            models.Index(fields=["id"], condition=Q(published_at__isnull=True), name="outbox_unpublished"),
            # Reconciliation and retention read published rows by age.
            models.Index(fields=["published_at"], name="outbox_published_at"),
        ]

    def __str__(self):
        return f"{self.type} order #{self.order_id} ({self.event_id})"

    @property
    def is_published(self) -> bool:
        return self.published_at is not None


class DeliveryStatus(models.TextChoices):
    PENDING = "PENDING", _("Pending")
    SENT = "SENT", _("Sent")
    SKIPPED = "SKIPPED", _("Skipped (no address)")
    FAILED = "FAILED", _("Failed (dead-lettered)")


class EmailDelivery(models.Model):
    """The email of one outcome event: the consumers' de-duplication record.

    ``event_id`` is unique, so however often Kafka hands an event over, and to however many
    consumers, there is one row, and the row lock taken while sending lets only one of them send.
    """

    event_id = models.UUIDField(_("event id"), unique=True, editable=False)
    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, related_name="email_deliveries", verbose_name=_("order")
    )
    type = models.CharField(_("type"), max_length=32, choices=EventType.choices)
    recipient = models.EmailField(_("recipient"), blank=True)
    language = models.CharField(_("language"), max_length=8, blank=True)
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=DeliveryStatus.choices,
        default=DeliveryStatus.PENDING,
        db_index=True,
    )
    # Tries the mail server answered (accepted or refused); an unreachable server does not count.
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("email delivery")
        verbose_name_plural = _("email deliveries")
        permissions = [("resend_email", _("Can send outcome emails again"))]

    def __str__(self):
        return f"{self.type} email for order #{self.order_id} ({self.status})"
