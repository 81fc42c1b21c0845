"""Staff see payments and PayPal webhook events; nobody edits money by hand.

Every field is read-only: states change only through the services (the refund action below, or the
order admin's actions).
"""

import logging

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from payments.models import Payment, PaymentStatus, WebhookEvent
from shop.errors import ShopError

logger = logging.getLogger(__name__)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "order",
        "status",
        "amount",
        "refunded_amount",
        "currency",
        "provider_order_id",
        "capture_id",
        "refund_id",
        "updated_at",
    )
    list_filter = ("status", "currency")
    search_fields = ("transaction_id", "provider_order_id", "capture_id", "refund_id", "order__user__email")
    list_select_related = ("order",)
    ordering = ("-created_at", "-id")
    actions = ("refund_through_paypal",)

    @admin.action(
        description=_("Refund the selected captured payments through PayPal"), permissions=["change"]
    )
    def refund_through_paypal(self, request, queryset):
        from payments.services import payment_refund

        done, skipped = 0, 0
        for payment in queryset.only("id", "order_id", "status"):
            if payment.status != PaymentStatus.SUCCESS:
                skipped += 1
                continue
            try:
                payment_refund(order_id=payment.order_id)
            except ShopError as error:
                self.message_user(
                    request,
                    _("Payment #%(id)s: %(error)s") % {"id": payment.pk, "error": error.message},
                    messages.ERROR,
                )
            else:
                done += 1
        if done:
            message = ngettext("%(count)d payment was refunded.", "%(count)d payments were refunded.", done)
            self.message_user(request, message % {"count": done}, messages.SUCCESS)
        if skipped:
            message = ngettext(
                "%(count)d payment was not captured and was left as it is.",
                "%(count)d payments were not captured and were left as they are.",
                skipped,
            )
            self.message_user(request, message % {"count": skipped}, messages.WARNING)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = (
        "event_id",
        "event_type",
        "resource_id",
        "payment",
        "outcome",
        "received_at",
        "processed_at",
    )
    list_filter = ("event_type", "outcome")
    search_fields = ("event_id", "resource_id", "payment__provider_order_id")
    list_select_related = ("payment",)
    date_hierarchy = "received_at"

    def has_change_permission(self, request, obj=None):
        return False
