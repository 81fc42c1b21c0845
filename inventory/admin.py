from django.contrib import admin
from django.db.models import F
from django.utils.translation import gettext_lazy as _

from inventory.models import Product, ReservedStock, Stock


class StockInline(admin.StackedInline):
    model = Stock
    can_delete = False
    min_num = 1
    max_num = 1
    fields = ("on_hand", "reserved", "low_stock_threshold")
    readonly_fields = ("reserved",)


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


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "sku", "price", "currency", "is_active", "on_hand", "reserved", "available")
    list_filter = ("is_active", LowStockFilter)
    search_fields = ("name", "sku")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [StockInline]
    list_select_related = ("stock",)

    @admin.display(description=_("on hand"), ordering="stock__on_hand")
    def on_hand(self, obj):
        return obj.stock.on_hand

    @admin.display(description=_("reserved"), ordering="stock__reserved")
    def reserved(self, obj):
        return obj.stock.reserved

    def get_queryset(self, request):
        return (
            super().get_queryset(request).annotate(available_units=F("stock__on_hand") - F("stock__reserved"))
        )

    @admin.display(description=_("available"), ordering="available_units")
    def available(self, obj):
        return obj.stock.available


@admin.register(ReservedStock)
class ReservedStockAdmin(admin.ModelAdmin):
    list_display = ("order", "product", "quantity", "expires_at", "time_left")
    list_select_related = ("order", "product")
    readonly_fields = ("order", "product", "quantity", "expires_at", "created_at")
    date_hierarchy = "expires_at"

    @admin.display(description=_("time left"))
    def time_left(self, obj):
        from django.utils import timezone

        left = obj.expires_at - timezone.now()
        return _("expired") if left.total_seconds() <= 0 else str(left).split(".")[0]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
