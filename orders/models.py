import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


class OrderStatus(models.TextChoices):
    PENDING = "PENDING", _("Pending payment")
    SUCCESS = "SUCCESS", _("Paid")
    FAILED = "FAILED", _("Failed")


class FailureReason(models.TextChoices):
    PAYMENT_DECLINED = "payment_declined", _("The payment was declined.")
    PAYMENT_CANCELLED = "payment_cancelled", _("The payment was cancelled at PayPal.")
    RESERVATION_EXPIRED = "reservation_expired", _("The order was not paid in time and its hold expired.")
    GATEWAY_ERROR = "gateway_error", _("PayPal could not be reached.")
    CANCELLED_BY_SHOPPER = "cancelled_by_shopper", _("You cancelled the order.")
    CANCELLED_BY_STAFF = "cancelled_by_staff", _("The shop cancelled the order.")
    AMOUNT_MISMATCH = "amount_mismatch", _("PayPal charged an amount that differs from the order total.")


class Order(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders", verbose_name=_("user")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING, db_index=True
    )
    failure_reason = models.CharField(
        _("failure reason"), max_length=32, choices=FailureReason.choices, blank=True, default=""
    )
    transaction_id = models.UUIDField(_("transaction id"), default=uuid.uuid4, unique=True, editable=False)
    total = models.DecimalField(_("total"), max_digits=12, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)
    # NULL means "no key": the partial unique constraint below skips it.
    idempotency_key = models.CharField(_("idempotency key"), max_length=255, null=True, blank=True)  # noqa: DJ001
    reserved_until = models.DateTimeField(_("reserved until"))
    # The shopper's language when ordering: the outcome email is written in it.
    language = models.CharField(_("language"), max_length=8, default="en")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        permissions = [("cancel_order", _("Can cancel pending orders"))]
        indexes = [models.Index(fields=["status", "reserved_until"], name="order_status_reserved_until")]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="order_idempotency_key_unique_per_user",
            ),
            models.CheckConstraint(
                condition=(Q(status="FAILED") & ~Q(failure_reason=""))
                | (~Q(status="FAILED") & Q(failure_reason="")),
                name="order_failure_reason_iff_failed",
            ),
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_not_negative"),
        ]

    def __str__(self):
        return f"Order #{self.pk} ({self.status})"

    def get_absolute_url(self):
        return reverse("order-detail", kwargs={"pk": self.pk})

    @property
    def is_final(self):
        return self.status != OrderStatus.PENDING


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines", verbose_name=_("order"))
    product = models.ForeignKey(
        "inventory.Product", on_delete=models.PROTECT, related_name="order_lines", verbose_name=_("product")
    )
    product_name = models.CharField(_("product name"), max_length=200)
    quantity = models.PositiveIntegerField(_("quantity"))
    unit_price = models.DecimalField(_("unit price"), max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["id"]
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        constraints = [
            models.UniqueConstraint(fields=["order", "product"], name="orderline_one_per_product"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="orderline_quantity_positive"),
        ]

    def __str__(self):
        return f"{self.quantity} × {self.product_name}"

    @property
    def line_total(self):
        return self.unit_price * self.quantity
