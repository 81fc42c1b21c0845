from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class PaymentStatus(models.TextChoices):
    PENDING = "PENDING", _("Pending")
    SUCCESS = "SUCCESS", _("Captured")
    FAILED = "FAILED", _("Failed")
    REFUNDED = "REFUNDED", _("Refunded")


class Payment(models.Model):
    """The one payment of an order; it shares the order's ``transaction_id``."""

    order = models.OneToOneField(
        "orders.Order", on_delete=models.CASCADE, related_name="payment", verbose_name=_("order")
    )
    transaction_id = models.UUIDField(_("transaction id"), unique=True, editable=False)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=PaymentStatus.choices,
        default=PaymentStatus.PENDING,
        db_index=True,
    )
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)
    provider = models.CharField(_("provider"), max_length=32, default="paypal")
    provider_order_id = models.CharField(
        _("PayPal order id"), max_length=64, null=True, blank=True, unique=True
    )
    approval_url = models.URLField(_("approval URL"), max_length=500, blank=True)
    capture_id = models.CharField(_("capture id"), max_length=64, blank=True)
    refund_id = models.CharField(_("refund id"), max_length=64, blank=True)
    # What PayPal has given back to the payer so far; the payment is REFUNDED once it is all back.
    refunded_amount = models.DecimalField(_("refunded amount"), max_digits=12, decimal_places=2, default=0)
    # The order failed while PayPal may hold money for it (a capture we have not heard of, or one
    # not refunded yet): the expiry sweep asks PayPal again and refunds what it finds.
    needs_reconciliation = models.BooleanField(_("to be checked with PayPal"), default=False)
    # Every answer PayPal gave about this payment, oldest first, kept for audit.
    provider_responses = models.JSONField(_("provider responses"), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        permissions = [("refund_payment", _("Can refund captured payments through PayPal"))]
        indexes = [
            models.Index(
                fields=["order"], condition=Q(needs_reconciliation=True), name="payment_needs_reconciliation"
            )
        ]
        constraints = [
            models.CheckConstraint(condition=Q(refunded_amount__gte=0), name="payment_refunded_not_negative"),
        ]

    def __str__(self):
        return f"Payment {self.transaction_id} ({self.status})"


class WebhookEvent(models.Model):
    """One PayPal webhook event, kept once per PayPal event id.

    PayPal delivers each event at least once (and again when we answer anything but 2xx): the
    unique ``event_id`` is how a repeated delivery is recognised. ``processed_at`` is set only once
    the event was acted on, so a delivery that failed half-way is processed again on PayPal's retry.
    """

    event_id = models.CharField(_("event id"), max_length=255, unique=True)
    event_type = models.CharField(_("event type"), max_length=64, db_index=True)
    resource_id = models.CharField(_("resource id"), max_length=64, blank=True)
    payment = models.ForeignKey(
        Payment,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="webhook_events",
        verbose_name=_("payment"),
    )
    payload = models.JSONField(_("payload"))
    outcome = models.CharField(_("outcome"), max_length=16, blank=True)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = _("PayPal webhook event")
        verbose_name_plural = _("PayPal webhook events")

    def __str__(self):
        return f"{self.event_type} {self.event_id}"
