"""Staff see payments and PayPal webhook events; nobody edits money by hand.

Both are read-only (no add, change or delete; a POST to a change page is refused): states change
only through the services, here the refund action (with a confirmation page), which needs the
``payments.refund_payment`` permission.
"""

from django.contrib import admin
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.admin import (
    ActionRow,
    ReadOnlyAdminMixin,
    RowOutcome,
    confirm_then_run_on_each,
    done,
    skipped,
)
from payments.models import Payment, PaymentStatus, WebhookEvent
from payments.services import payment_refund


def refund_order_payment(order_id: int) -> RowOutcome:
    """The refund actions' work for one order: refund its captured payment, or say why not."""
    payment = Payment.objects.filter(order_id=order_id).only("status", "refunded_amount").first()
    if payment is None or payment.status != PaymentStatus.SUCCESS:
        return skipped(gettext("no captured payment to refund."))
    refunded = payment_refund(order_id=order_id)
    amount = refunded.refunded_amount - payment.refunded_amount  # what this refund moved, not another's
    if amount <= 0:
        return skipped(gettext("refunded already, nothing more to refund."))
    return done(
        gettext("%(amount)s %(currency)s refunded through PayPal.")
        % {"amount": amount, "currency": refunded.currency}
    )


def _payment_row(payment: Payment) -> ActionRow:
    detail = gettext("%(amount)s %(currency)s, %(status)s, order #%(order)s") % {
        "amount": payment.amount,
        "currency": payment.currency,
        "status": payment.get_status_display(),
        "order": payment.order_id,
    }
    return ActionRow(payment.pk, gettext("Payment #%(id)s") % {"id": payment.pk}, detail)


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_refund_permission(self, request):
        return request.user.has_perm("payments.refund_payment")

    @admin.action(
        description=_("Refund the selected captured payments through PayPal"), permissions=["refund"]
    )
    def refund_through_paypal(self, request, queryset):
        payments = {payment.pk: payment for payment in queryset.order_by("pk")}
        return confirm_then_run_on_each(
            self,
            request,
            [_payment_row(payment) for payment in payments.values()],
            lambda row: refund_order_payment(payments[row.pk].order_id),
            title=gettext("Refund payments"),
            question=gettext(
                "Refund these payments through PayPal? The money goes back to each shopper at once and "
                "cannot be taken again. Payments that are not captured are left as they are."
            ),
            confirm=gettext("Yes, refund them"),
        )


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]
