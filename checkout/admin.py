"""The back office of the checkout: orders (with their payments, holds and emails; ``order_admin``) and
stock audits. Django's admin autodiscovery imports this module, which registers both."""

from django.contrib import admin

from checkout import order_admin  # noqa: F401 - registers the order admin
from checkout.models import StockAudit
from core.admin import ReadOnlyAdminMixin


@admin.register(StockAudit)
class StockAuditAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("ran_at", "drift_count")
    readonly_fields = ("ran_at", "drift_count", "drifts")
    date_hierarchy = "ran_at"
