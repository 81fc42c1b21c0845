"""Staff admin for orders: find an order, see everything about it, and act on it through services.

Nothing here changes an order directly: every field is read-only and the actions call the same
services as the shop (cancel, refund, resend the outcome email), so the admin keeps every rule the
checkout keeps.
"""

import json
import logging

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from inventory.models import ReservedStock
from notifications.admin import EmailDeliveryInline
from orders.models import FailureReason, Order, OrderLine, OrderStatus
from payments.models import Payment, PaymentStatus
from shop.admin_mixins import ReadOnlyAdminMixin
from shop.errors import ShopError

logger = logging.getLogger(__name__)


class ReadOnlyInlineMixin(ReadOnlyAdminMixin):
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False


class OrderLineInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = OrderLine
    fields = ("product", "product_name", "quantity", "unit_price", "line_total")
    readonly_fields = fields
    verbose_name_plural = _("order lines")

    @admin.display(description=_("line total"))
    def line_total(self, obj):
        return obj.line_total


class PaymentInline(ReadOnlyInlineMixin, admin.StackedInline):
    model = Payment
    fields = (
        "status",
        "amount",
        "currency",
        "provider",
        "provider_order_id",
        "capture_id",
        "refund_id",
        "approval_url",
        "transaction_id",
        "created_at",
        "updated_at",
        "provider_answers",
    )
    readonly_fields = fields

    @admin.display(description=_("provider responses"))
    def provider_answers(self, obj):
        count = len(obj.provider_responses or [])
        if not count:
            return "-"
        return format_html(
            "<details><summary>{}</summary><pre>{}</pre></details>",
            ngettext("%(count)d answer from PayPal", "%(count)d answers from PayPal", count)
            % {"count": count},
            json.dumps(obj.provider_responses, indent=2, ensure_ascii=False),
        )


class ReservedStockInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = ReservedStock
    fields = ("product", "quantity", "expires_at", "time_left")
    readonly_fields = fields
    verbose_name_plural = _("stock holds")

    @admin.display(description=_("time left"))
    def time_left(self, obj):
        return _time_left(obj.expires_at)


def _time_left(until) -> str:
    left = until - timezone.now()
    if left.total_seconds() <= 0:
        return str(_("expired"))
    return str(left).split(".")[0]


class PaymentStatusFilter(admin.SimpleListFilter):
    title = _("payment status")
    parameter_name = "payment_status"

    def lookups(self, request, model_admin):
        return PaymentStatus.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(payment__status=self.value())
        return queryset


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "user_email",
        "status",
        "failure_reason",
        "total",
        "currency",
        "payment_status",
        "created_at",
        "hold_time_left",
    )
    list_display_links = ("id", "user_email")
    list_filter = ("status", "failure_reason", PaymentStatusFilter, ("created_at", admin.DateFieldListFilter))
    search_fields = ("transaction_id", "user__email", "user__username", "payment__provider_order_id")
    search_help_text = _("Search by transaction id, shopper email or username, or PayPal order id.")
    date_hierarchy = "created_at"
    list_select_related = ("user", "payment")
    list_per_page = 50
    ordering = ("-created_at", "-id")
    fieldsets = (
        (None, {"fields": ("user", "status", "failure_reason", "transaction_id", "language")}),
        (_("Money"), {"fields": ("total", "currency")}),
        (
            _("Dates"),
            {"fields": ("created_at", "reserved_until", "hold_time_left", "completed_at", "updated_at")},
        ),
        (_("Placement"), {"fields": ("idempotency_key",), "classes": ("collapse",)}),
    )
    readonly_fields = (
        "user",
        "status",
        "failure_reason",
        "transaction_id",
        "language",
        "total",
        "currency",
        "created_at",
        "reserved_until",
        "hold_time_left",
        "completed_at",
        "updated_at",
        "idempotency_key",
    )
    actions = ("cancel_pending_orders", "refund_payments", "resend_outcome_emails")

    inlines = (OrderLineInline, PaymentInline, ReservedStockInline, EmailDeliveryInline)

    def has_add_permission(self, request):
        return False  # orders are placed by shoppers, through the checkout

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Every field is read-only: there is nothing to save, only actions to run from the list.
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def has_delete_permission(self, request, obj=None):
        return False  # an order, its payment and its emails are the shop's records

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description=_("shopper"), ordering="user__email")
    def user_email(self, obj):
        return obj.user.email or obj.user.get_username()

    @admin.display(description=_("payment"), ordering="payment__status")
    def payment_status(self, obj):
        payment = getattr(obj, "payment", None)
        return payment.get_status_display() if payment is not None else "-"

    @admin.display(description=_("hold time left"))
    def hold_time_left(self, obj):
        if obj.status != OrderStatus.PENDING:
            return "-"
        return _time_left(obj.reserved_until)

    # --- actions: each goes through a service, order by order ------------------------------------

    def _report(self, request, *, done: int, done_message, skipped: int, skipped_message, failures):
        if done:
            self.message_user(request, done_message % {"count": done}, messages.SUCCESS)
        if skipped:
            self.message_user(request, skipped_message % {"count": skipped}, messages.WARNING)
        for order_id, error in failures:
            self.message_user(
                request,
                _("Order #%(id)s: %(error)s") % {"id": order_id, "error": error},
                messages.ERROR,
            )

    @admin.action(
        description=_("Cancel the selected pending orders (stock goes back)"), permissions=["change"]
    )
    def cancel_pending_orders(self, request, queryset):
        from orders.services import order_fail

        done, skipped, failures = 0, 0, []
        for order_id, status in queryset.values_list("id", "status"):
            if status != OrderStatus.PENDING:
                skipped += 1
                continue
            try:
                order = order_fail(order_id=order_id, reason=FailureReason.CANCELLED_BY_SHOPPER)
            except ShopError as error:
                failures.append((order_id, error.message))
                continue
            if order.status == OrderStatus.FAILED:
                done += 1
            else:
                skipped += 1
        self._report(
            request,
            done=done,
            done_message=ngettext("%(count)d order was cancelled.", "%(count)d orders were cancelled.", done),
            skipped=skipped,
            skipped_message=ngettext(
                "%(count)d order was not pending and was left as it is.",
                "%(count)d orders were not pending and were left as they are.",
                skipped,
            ),
            failures=failures,
        )

    @admin.action(description=_("Refund the payment of the selected orders"), permissions=["change"])
    def refund_payments(self, request, queryset):
        from payments.services import payment_refund

        done, skipped, failures = 0, 0, []
        for order in queryset.select_related("payment"):
            payment = getattr(order, "payment", None)
            if payment is None or payment.status != PaymentStatus.SUCCESS:
                skipped += 1
                continue
            try:
                payment_refund(order_id=order.pk)
            except ShopError as error:
                failures.append((order.pk, error.message))
            except Exception:
                logger.exception("admin refund of order %s failed", order.pk)
                failures.append((order.pk, _("the refund failed; see the logs.")))
            else:
                done += 1
        self._report(
            request,
            done=done,
            done_message=ngettext(
                "%(count)d payment was refunded.", "%(count)d payments were refunded.", done
            ),
            skipped=skipped,
            skipped_message=ngettext(
                "%(count)d order has no captured payment to refund.",
                "%(count)d orders have no captured payment to refund.",
                skipped,
            ),
            failures=failures,
        )

    @admin.action(
        description=_("Send the outcome email of the selected orders again"), permissions=["change"]
    )
    def resend_outcome_emails(self, request, queryset):
        from notifications.services import email_resend_order_outcome

        done, skipped, failures = 0, 0, []
        for order_id, status in queryset.values_list("id", "status"):
            if status == OrderStatus.PENDING:
                skipped += 1  # no outcome yet, so no email to send
                continue
            try:
                email_resend_order_outcome(order_id=order_id)
            except ShopError as error:
                failures.append((order_id, error.message))
            else:
                done += 1
        self._report(
            request,
            done=done,
            done_message=ngettext(
                "The email of %(count)d order will be sent again.",
                "The emails of %(count)d orders will be sent again.",
                done,
            ),
            skipped=skipped,
            skipped_message=ngettext(
                "%(count)d order is still pending and has no outcome email yet.",
                "%(count)d orders are still pending and have no outcome email yet.",
                skipped,
            ),
            failures=failures,
        )
