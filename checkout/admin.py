from django.contrib import admin

from checkout.models import StockAudit
from core.admin import ReadOnlyAdminMixin


@admin.register(StockAudit)
class StockAuditAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("ran_at", "drift_count")
    readonly_fields = ("ran_at", "drift_count", "drifts")
    date_hierarchy = "ran_at"
