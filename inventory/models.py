from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Product(models.Model):
    sku = models.CharField(_("SKU"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True)
    price = models.DecimalField(
        _("price"), max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))]
    )
    currency = models.CharField(_("currency"), max_length=3, default="USD")
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("product")
        verbose_name_plural = _("products")
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="product_price_positive"),
        ]

    def __str__(self):
        return f"{self.name} ({self.sku})"

    def get_absolute_url(self):
        return reverse("product", kwargs={"slug": self.slug})


class Stock(models.Model):
    """How many units the shop has (on_hand) and how many of them are held for pending orders.

    The database, not only Python, keeps ``0 <= reserved <= on_hand``.
    """

    product = models.OneToOneField(
        Product, on_delete=models.CASCADE, primary_key=True, related_name="stock", verbose_name=_("product")
    )
    on_hand = models.PositiveIntegerField(_("on hand"), default=0)
    reserved = models.PositiveIntegerField(_("reserved"), default=0)
    low_stock_threshold = models.PositiveIntegerField(_("low-stock threshold"), default=5)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("stock")
        verbose_name_plural = _("stock")
        permissions = [("adjust_stock", _("Can receive, write off and count stock"))]
        constraints = [
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="stock_on_hand_not_negative"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="stock_reserved_not_negative"),
            models.CheckConstraint(
                condition=Q(reserved__lte=F("on_hand")), name="stock_reserved_within_on_hand"
            ),
        ]

    def __str__(self):
        return f"{self.product_id}: {self.available} of {self.on_hand} available"

    @property
    def available(self):
        return self.on_hand - self.reserved


class ReservedStock(models.Model):
    """A hold on stock for one pending order, until it is paid for or ``expires_at`` passes."""

    order = models.ForeignKey(
        "orders.Order", on_delete=models.CASCADE, related_name="holds", verbose_name=_("order")
    )
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, related_name="holds", verbose_name=_("product")
    )
    quantity = models.PositiveIntegerField(_("quantity"))
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("reserved stock")
        verbose_name_plural = _("reserved stock")
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="reservedstock_quantity_positive"),
            models.UniqueConstraint(fields=["order", "product"], name="reservedstock_one_per_order_product"),
        ]

    def __str__(self):
        return f"{self.quantity} × {self.product_id} for order {self.order_id}"


class StockMovementReason(models.TextChoices):
    OPENING_BALANCE = "opening_balance", _("Opening balance")
    RECEIPT = "receipt", _("Received")
    WRITE_OFF = "write_off", _("Written off")
    COUNT = "count", _("Stock count")
    SALE = "sale", _("Sold")
    DEMO_SEED = "demo_seed", _("Demo data")


class StockMovement(models.Model):
    """One change of a product's ``on_hand``: the stock ledger. Rows are only ever added.

    Per product the deltas add up to ``Stock.on_hand`` (``audit_stock`` checks it), and each row
    says why the count moved and who moved it: a staff user, or the order that was sold.
    """

    product = models.ForeignKey(
        Product, on_delete=models.CASCADE, related_name="stock_movements", verbose_name=_("product")
    )
    delta = models.IntegerField(_("change"))
    on_hand_after = models.PositiveIntegerField(_("on hand after"))
    reason = models.CharField(_("reason"), max_length=16, choices=StockMovementReason.choices)
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("staff user"),
    )
    order = models.ForeignKey(
        "orders.Order",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="stock_movements",
        verbose_name=_("order"),
    )
    note = models.CharField(_("note"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("stock movement")
        verbose_name_plural = _("stock ledger")
        indexes = [models.Index(fields=["product", "-id"], name="stockmovement_product_recent")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(reason="sale") | Q(order__isnull=False), name="stockmovement_sale_has_order"
            ),
        ]

    def __str__(self):
        return f"{self.product_id} {self.delta:+d} ({self.reason}) = {self.on_hand_after}"
