"""Staff admin of the catalog and its stock.

The product form edits the catalog fields only. Stock moves through its own page ("Receive, write
off or count"), which calls the stock services: they lock the row, update with ``F()`` and write
the ledger, so a form opened before a sale can never write an old count back. ``reserved`` is
never on a form. Holds and the ledger are read-only.
"""

import re

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.admin import ReadOnlyAdminMixin
from inventory.errors import InventoryError, StockChangedMeanwhile
from inventory.models import Product, ReservedStock, Stock, StockMovement
from inventory.services import (
    PRODUCT_FIELDS,
    product_create,
    product_update,
    stock_count,
    stock_receive,
    stock_threshold_set,
    stock_write_off,
)

RECENT_MOVEMENTS = 10
MAX_UNITS = 1_000_000


class ProductForm(forms.ModelForm):
    """The catalog fields of a product. A form opened before another staff member saved the product
    is refused (it would write back their changes), as is a stock count opened before a sale."""

    version = forms.CharField(widget=forms.HiddenInput, required=False)
    low_stock_threshold = forms.IntegerField(
        label=_("low-stock threshold"),
        min_value=0,
        max_value=MAX_UNITS,
        initial=5,
        help_text=_("The product is shown as low on stock at or below this many available units."),
    )

    class Meta:
        model = Product
        fields = PRODUCT_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stock = Stock.objects.filter(pk=self.instance.pk).first() if self.instance.pk else None
        if stock is not None:
            self.fields["low_stock_threshold"].initial = stock.low_stock_threshold
        if self.instance.pk:
            self.fields["version"].initial = _version(self.instance.updated_at, stock)

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk:
            # Held until the admin's transaction ends (after the save): no other save slips in between.
            # NO KEY UPDATE does not stand in the way of placements (they take KEY SHARE locks).
            current = Product.objects.select_for_update(no_key=True).get(pk=self.instance.pk)
            stock = Stock.objects.filter(pk=current.pk).first()
            if cleaned.get("version") != _version(current.updated_at, stock):
                raise forms.ValidationError(
                    _(
                        "Someone saved this product after you opened this page. Reload it to see their "
                        "changes, then make yours again."
                    ),
                    code="product_changed_meanwhile",
                )
        return cleaned


def _version(updated_at, stock) -> str:
    """What the product form was opened against: the product's and its threshold's last change."""
    threshold = stock.low_stock_threshold if stock is not None else ""
    return f"{updated_at.isoformat() if updated_at else ''}|{threshold}"


class ProductAddForm(ProductForm):
    opening_stock = forms.IntegerField(
        label=_("units on hand"),
        min_value=0,
        max_value=MAX_UNITS,
        initial=0,
        help_text=_("How many units the shop has now; recorded as the opening balance of the stock ledger."),
    )


class StockAdjustmentForm(forms.Form):
    RECEIVE, WRITE_OFF, COUNT = "receive", "write_off", "count"

    operation = forms.ChoiceField(
        label=_("What happened"),
        widget=forms.RadioSelect,
        choices=[
            (RECEIVE, _("Units arrived: add them to the stock")),
            (WRITE_OFF, _("Units are gone (broken, lost): take them out of the stock")),
            (COUNT, _("Stock count: this many units are on the shelf")),
        ],
    )
    units = forms.IntegerField(label=_("Units"), min_value=0, max_value=MAX_UNITS)
    note = forms.CharField(label=_("Note"), max_length=255, required=False)
    on_hand_seen = forms.IntegerField(widget=forms.HiddenInput, min_value=0)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("operation") in {self.RECEIVE, self.WRITE_OFF} and cleaned.get("units") == 0:
            self.add_error("units", _("Enter at least 1 unit."))
        return cleaned


class LowStockFilter(admin.SimpleListFilter):
    title = _("stock level")
    parameter_name = "stock_level"

    def lookups(self, request, model_admin):
        return [("low", _("Low stock")), ("out", _("Out of stock"))]

    def queryset(self, request, queryset):
        available = F("stock__on_hand") - F("stock__reserved")
        if self.value() == "low":
            return queryset.alias(available=available).filter(available__lte=F("stock__low_stock_threshold"))
        if self.value() == "out":
            return queryset.alias(available=available).filter(available__lte=0)
        return queryset


def _ledger_url(product_id: int) -> str:
    return f"{reverse('admin:inventory_stockmovement_changelist')}?product__id__exact={product_id}"


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductForm
    add_form = ProductAddForm
    list_display = (
        "name",
        "sku",
        "price",
        "currency",
        "is_active",
        "on_hand",
        "reserved",
        "available",
        "ledger",
    )
    list_filter = ("is_active", LowStockFilter)
    search_fields = ("name", "sku")
    prepopulated_fields = {"slug": ("name",)}
    list_select_related = ("stock",)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None and self.has_adjust_stock_permission(request):
            kwargs["form"] = self.add_form  # only who may move stock says how much there is
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        catalog = (None, {"fields": (*PRODUCT_FIELDS, "version")})
        if obj is None:
            opening = ("opening_stock",) if self.has_adjust_stock_permission(request) else ()
            return (catalog, (_("Stock"), {"fields": (*opening, "low_stock_threshold")}))
        return (
            catalog,
            (_("Stock"), {"fields": ("stock_summary", "low_stock_threshold", "recent_movements")}),
        )

    def get_readonly_fields(self, request, obj=None):
        return ("stock_summary", "recent_movements") if obj is not None else ()

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(available_units=F("stock__on_hand") - F("stock__reserved"))
            .select_related("stock")
        )

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            changed = {name: data[name] for name in form.changed_data if name in PRODUCT_FIELDS}
            if changed:
                product_update(product_id=obj.pk, **changed)
            if "low_stock_threshold" in form.changed_data:
                stock_threshold_set(product_id=obj.pk, low_stock_threshold=data["low_stock_threshold"])
            return
        product = product_create(
            **{name: data[name] for name in PRODUCT_FIELDS},
            on_hand=data.get("opening_stock") or 0,
            low_stock_threshold=data["low_stock_threshold"],
            staff=request.user,
        )
        obj.pk = product.pk
        obj._state.adding = False
        obj._state.db = product._state.db

    # --- columns and read-only fields --------------------------------------------------------------

    @admin.display(description=_("on hand"), ordering="stock__on_hand")
    def on_hand(self, obj):
        return obj.stock.on_hand if hasattr(obj, "stock") else 0

    @admin.display(description=_("reserved"), ordering="stock__reserved")
    def reserved(self, obj):
        return obj.stock.reserved if hasattr(obj, "stock") else 0

    @admin.display(description=_("available"), ordering="available_units")
    def available(self, obj):
        return obj.stock.available if hasattr(obj, "stock") else 0

    @admin.display(description=_("stock ledger"))
    def ledger(self, obj):
        return format_html('<a href="{}">{}</a>', _ledger_url(obj.pk), gettext("ledger"))

    @admin.display(description=_("stock"))
    def stock_summary(self, obj):
        stock = Stock.objects.filter(pk=obj.pk).first()
        on_hand, reserved = (stock.on_hand, stock.reserved) if stock else (0, 0)
        summary = gettext(
            "%(on_hand)d on hand, %(reserved)d held for pending orders, %(available)d available"
        ) % {
            "on_hand": on_hand,
            "reserved": reserved,
            "available": on_hand - reserved,
        }
        url = reverse("admin:inventory_product_stock", args=[obj.pk])
        return format_html('{} · <a href="{}">{}</a>', summary, url, gettext("Receive, write off or count"))

    @admin.display(description=_("stock ledger"))
    def recent_movements(self, obj):
        movements = list(
            StockMovement.objects.filter(product=obj)
            .select_related("staff", "order")
            .order_by("-id")[:RECENT_MOVEMENTS]
        )
        total = StockMovement.objects.filter(product=obj).aggregate(n=Count("id"))["n"]
        if not movements:
            return "-"
        head = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            gettext("at"),
            gettext("change"),
            gettext("on hand after"),
            gettext("reason"),
            gettext("by"),
            gettext("note"),
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    timezone.localtime(m.created_at).strftime("%Y-%m-%d %H:%M"),
                    f"{m.delta:+d}",
                    m.on_hand_after,
                    m.get_reason_display(),
                    _movement_by(m),
                    m.note,
                )
                for m in movements
            ),
        )
        more = gettext("All %(count)d movements") % {"count": total}
        return format_html(
            '<table class="stock-ledger"><thead>{}</thead><tbody>{}</tbody></table>'
            '<p><a href="{}">{}</a></p>',
            head,
            rows,
            _ledger_url(obj.pk),
            more,
        )

    # --- the stock page -----------------------------------------------------------------------------

    def get_urls(self):
        own = [
            path(
                "<path:object_id>/stock/",
                self.admin_site.admin_view(self.stock_view),
                name="inventory_product_stock",
            )
        ]
        return own + super().get_urls()

    def has_adjust_stock_permission(self, request):
        return request.user.has_perm("inventory.adjust_stock")

    def stock_view(self, request, object_id):
        """Receive, write off or count the stock of one product, through the stock services."""
        if not self.has_adjust_stock_permission(request):
            raise PermissionDenied
        if not re.fullmatch(r"[0-9]{1,18}", str(object_id)):
            raise Http404
        product = get_object_or_404(Product, pk=object_id)
        stock = Stock.objects.get_or_create(product=product)[0]
        if request.method == "POST":
            form = StockAdjustmentForm(request.POST)
            if form.is_valid() and self._apply_stock_adjustment(request, product, form):
                return HttpResponseRedirect(reverse("admin:inventory_product_change", args=[product.pk]))
            stock.refresh_from_db()
        else:
            form = StockAdjustmentForm(initial={"on_hand_seen": stock.on_hand})
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Stock of %(product)s") % {"product": product.name},
            "opts": self.model._meta,
            "original": product,
            "stock": stock,
            "form": form,
            "ledger_url": _ledger_url(product.pk),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/inventory/product/stock.html", context)

    def _apply_stock_adjustment(self, request, product, form) -> bool:
        data = form.cleaned_data
        operation, units, note = data["operation"], data["units"], data["note"]
        try:
            if operation == form.RECEIVE:
                movement = stock_receive(product_id=product.pk, quantity=units, staff=request.user, note=note)
            elif operation == form.WRITE_OFF:
                movement = stock_write_off(
                    product_id=product.pk, quantity=units, staff=request.user, note=note
                )
            else:
                movement = stock_count(
                    product_id=product.pk,
                    counted=units,
                    expected_on_hand=data["on_hand_seen"],
                    staff=request.user,
                    note=note,
                )
        except InventoryError as error:
            form.add_error("units", error.message)
            if isinstance(error, StockChangedMeanwhile):
                # The next try counts against today's figure, with a figure staff enter anew: saving
                # the refused page again must not apply the old count.
                form.data = form.data.copy()
                form.data["on_hand_seen"] = str(error.data["on_hand"])
                form.data["units"] = ""
            return False
        text = gettext("%(reason)s: %(delta)+d units, %(on_hand)d on hand now.") % {
            "reason": movement.get_reason_display(),
            "delta": movement.delta,
            "on_hand": movement.on_hand_after,
        }
        self.log_change(request, product, text)
        self.message_user(request, text, messages.SUCCESS)
        return True


def _movement_by(movement: StockMovement) -> str:
    if movement.order_id:
        return gettext("order #%(id)s") % {"id": movement.order_id}
    if movement.staff_id:
        return movement.staff.get_username()
    return "-"


@admin.register(StockMovement)
class StockMovementAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "product", "delta", "on_hand_after", "reason", "by", "note")
    list_filter = ("reason", ("created_at", admin.DateFieldListFilter), "product")
    search_fields = ("product__sku", "product__name", "note", "order__id")
    list_select_related = ("product", "staff", "order")
    date_hierarchy = "created_at"
    ordering = ("-id",)
    readonly_fields = ("product", "delta", "on_hand_after", "reason", "staff", "order", "note", "created_at")

    @admin.display(description=_("by"))
    def by(self, obj):
        return _movement_by(obj)


@admin.register(ReservedStock)
class ReservedStockAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("order", "product", "quantity", "expires_at", "time_left")
    list_select_related = ("order", "product")
    readonly_fields = ("order", "product", "quantity", "expires_at", "created_at")
    date_hierarchy = "expires_at"

    @admin.display(description=_("time left"))
    def time_left(self, obj):
        left = obj.expires_at - timezone.now()
        return _("expired") if left.total_seconds() <= 0 else str(left).split(".")[0]
