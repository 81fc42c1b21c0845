"""Staff admin for orders: find an order, see everything about it, and act on it through services.

Nothing here changes an order directly: every field is read-only and the actions call the same
services as the shop (cancel, refund, resend the outcome email), so the admin keeps every rule the
checkout keeps.
"""

import csv
import json
import re

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from core.admin import (
    ActionRow,
    ReadOnlyAdminMixin,
    confirm_then_run_on_each,
    done,
    run_on_each,
    skipped,
)
from inventory.models import ReservedStock
from notifications.admin import EmailDeliveryInline
from notifications.models import EventType
from orders.models import Order, OrderLine, OrderStatus
from orders.outcomes import order_outcome_preview, order_outcome_resend
from orders.services import order_cancel_by_staff
from payments.admin import refund_order_payment
from payments.models import Payment, PaymentStatus


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
    verbose_name_plural = _("payment")  # an order has one: the heading says so
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
class OrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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

    # --- pages of its own: the outcome email as the shopper reads it, and the list as CSV ---------------

    def get_urls(self):
        own = [
            path(
                "<path:object_id>/email-preview/",
                self.admin_site.admin_view(self.email_preview_view),
                name="orders_order_email_preview",
            ),
            path(
                "export.csv", self.admin_site.admin_view(self.export_csv_view), name="orders_order_export_csv"
            ),
        ]
        return own + super().get_urls()

    def email_preview_view(self, request, object_id):
        """The success or failure email of this order in English or Vietnamese, rendered now."""
        if not re.fullmatch(r"[0-9]{1,18}", str(object_id)):
            raise Http404
        order = self.get_object(request, object_id)
        if order is None or not self.has_view_permission(request, order):
            raise Http404
        event_type = request.GET.get("type") or (
            EventType.ORDER_SUCCEEDED if order.status != OrderStatus.FAILED else EventType.ORDER_FAILED
        )
        language = request.GET.get("language") or order.language
        if event_type not in EventType.values or language not in dict(settings.LANGUAGES):
            raise Http404
        rendered = order_outcome_preview(order=order, event_type=event_type, language=language)
        choices = [
            (kind, label, code, name, kind == event_type and code == language)
            for kind, label in EventType.choices
            for code, name in settings.LANGUAGES
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": order,
            "title": gettext("Email of order #%(id)s") % {"id": order.pk},
            "rendered": rendered,
            "choices": choices,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/orders/order/email_preview.html", context)

    def export_csv_view(self, request):
        """The order list as filtered and searched on the change list, as CSV (one row per order)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        orders = changelist.get_queryset(request).select_related("user", "payment").prefetch_related("lines")
        response = StreamingHttpResponse(_csv_rows(orders.iterator(chunk_size=1000)), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="orders-{timezone.now():%Y%m%d-%H%M%S}.csv"'
        return response

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

    # --- actions: each goes through a service, order by order, and says what happened to each ------

    def has_cancel_permission(self, request):
        return request.user.has_perm("orders.cancel_order")

    def has_refund_permission(self, request):
        return request.user.has_perm("payments.refund_payment")

    def has_resend_permission(self, request):
        return request.user.has_perm("notifications.resend_email")

    @admin.action(
        description=_("Cancel the selected pending orders (stock goes back)"), permissions=["cancel"]
    )
    def cancel_pending_orders(self, request, queryset):
        rows = [_order_row(order) for order in queryset.select_related("user", "payment").order_by("pk")]

        def cancel(row):
            if queryset.model.objects.filter(pk=row.pk, status=OrderStatus.PENDING).exists():
                order_cancel_by_staff(order_id=row.pk)
                self.log_change(request, queryset.model(pk=row.pk), gettext("Cancelled by staff."))
                return done(gettext("cancelled; its stock went back on sale and the shopper is told."))
            return skipped(gettext("not pending, left as it is."))

        return confirm_then_run_on_each(
            self,
            request,
            rows,
            cancel,
            title=gettext("Cancel orders"),
            question=gettext(
                "Cancel these orders? Pending ones fail with the reason “cancelled by the shop”, their "
                "stock goes back on sale and each shopper gets an email. Orders that are no longer pending "
                "are left as they are."
            ),
            confirm=gettext("Yes, cancel them"),
        )

    @admin.action(description=_("Refund the payment of the selected orders"), permissions=["refund"])
    def refund_payments(self, request, queryset):
        rows = [_order_row(order) for order in queryset.select_related("user", "payment").order_by("pk")]

        def refund(row):
            outcome = refund_order_payment(row.pk)
            if outcome.level == messages.SUCCESS:
                self.log_change(request, queryset.model(pk=row.pk), gettext("Payment refunded by staff."))
            return outcome

        return confirm_then_run_on_each(
            self,
            request,
            rows,
            refund,
            title=gettext("Refund payments"),
            question=gettext(
                "Refund the captured payments of these orders through PayPal? The money goes back to each "
                "shopper at once and cannot be taken again. Orders without a captured payment are left as "
                "they are."
            ),
            confirm=gettext("Yes, refund them"),
        )

    @admin.action(
        description=_("Send the outcome email of the selected orders again"), permissions=["resend"]
    )
    def resend_outcome_emails(self, request, queryset):
        def resend(row):
            if queryset.model.objects.filter(pk=row.pk, status=OrderStatus.PENDING).exists():
                return skipped(gettext("still pending: no outcome email yet."))
            order_outcome_resend(order_id=row.pk)
            return done(gettext("the email will be sent again."))

        rows = [
            ActionRow(pk, _order_label(pk)) for pk in queryset.order_by("pk").values_list("pk", flat=True)
        ]
        run_on_each(self, request, rows, resend)


CSV_COLUMNS = [
    "id",
    "created_at",
    "status",
    "failure_reason",
    "total",
    "currency",
    "payment_status",
    "transaction_id",
    "paypal_order_id",
    "shopper_email",
    "shopper_username",
    "language",
    "lines",
]


def _csv_cell(value) -> str:
    """A cell a spreadsheet shows as text: never a formula (a shopper chose their username and email)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value):
        return value


def _csv_rows(orders):
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for order in orders:
        payment = getattr(order, "payment", None)
        yield writer.writerow(
            [
                _csv_cell(value)
                for value in (
                    order.pk,
                    order.created_at.isoformat(),
                    order.status,
                    order.failure_reason,
                    order.total,
                    order.currency,
                    payment.status if payment else "",
                    order.transaction_id,
                    payment.provider_order_id if payment else "",
                    order.user.email,
                    order.user.get_username(),
                    order.language,
                    "; ".join(f"{line.quantity} x {line.product_name}" for line in order.lines.all()),
                )
            ]
        )


def _order_label(order_id: int) -> str:
    return gettext("Order #%(id)s") % {"id": order_id}


def _order_row(order: Order) -> ActionRow:
    payment = getattr(order, "payment", None)
    detail = gettext("%(total)s %(currency)s, %(status)s, payment %(payment)s, %(shopper)s") % {
        "total": order.total,
        "currency": order.currency,
        "status": order.get_status_display(),
        "payment": payment.get_status_display() if payment is not None else "-",
        "shopper": order.user.email or order.user.get_username(),
    }
    return ActionRow(order.pk, _order_label(order.pk), detail)
