from django.db import models
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
    # Every answer PayPal gave about this payment, oldest first, kept for audit.
    provider_responses = models.JSONField(_("provider responses"), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")

    def __str__(self):
        return f"Payment {self.transaction_id} ({self.status})"
