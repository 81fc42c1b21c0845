"""Staff admin of outcome emails: see what was published and mailed, and send an email again.

Everything is read-only; the one action goes through ``notifications.services``. The orders admin
shows each order's deliveries with ``EmailDeliveryInline``.
"""

import json

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from notifications.models import EmailDelivery, OutboxEvent
from notifications.services import email_delivery_resend, outbox_event_resend
from shop.admin_mixins import ReadOnlyAdminMixin
from shop.errors import ShopError

__all__ = ["EmailDeliveryAdmin", "EmailDeliveryInline", "OutboxEventAdmin"]


class EmailDeliveryInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The outcome emails of an order, for ``orders.admin.OrderAdmin``."""

    model = EmailDelivery
    fk_name = "order"
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    fields = ("type", "status", "recipient", "language", "subject", "attempts", "sent_at", "last_error")
    readonly_fields = fields
    ordering = ("id",)
    verbose_name_plural = _("outcome emails")


def _report(modeladmin, request, *, done: int, failures: list[tuple[str, str]]):
    if done:
        modeladmin.message_user(
            request,
            ngettext("%(count)d email will be sent again.", "%(count)d emails will be sent again.", done)
            % {"count": done},
            messages.SUCCESS,
        )
    for label, error in failures:
        modeladmin.message_user(request, f"{label}: {error}", messages.ERROR)


@admin.register(EmailDelivery)
class EmailDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "order", "type", "status", "recipient", "language", "attempts", "sent_at")
    list_filter = ("status", "type", "language")
    search_fields = ("event_id", "recipient", "order__id", "order__transaction_id")
    list_select_related = ("order",)
    ordering = ("-id",)
    readonly_fields = (
        "event_id",
        "order",
        "type",
        "status",
        "recipient",
        "language",
        "subject",
        "attempts",
        "last_error",
        "created_at",
        "updated_at",
        "sent_at",
    )
    actions = ("resend_email",)

    def has_resend_permission(self, request):
        # Fields stay read-only for everyone; sending again takes the model's change permission.
        return request.user.has_perm("notifications.change_emaildelivery")

    @admin.action(description=_("Resend the selected emails"), permissions=["resend"])
    def resend_email(self, request, queryset):
        done, failures = 0, []
        for delivery_id in queryset.values_list("id", flat=True):
            try:
                email_delivery_resend(delivery_id=delivery_id)
            except ShopError as error:
                failures.append((f"#{delivery_id}", error.message))
            else:
                done += 1
        _report(self, request, done=done, failures=failures)


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "type", "order", "created_at", "published_at", "attempts", "short_error")
    list_filter = ("type", ("published_at", admin.EmptyFieldListFilter))
    search_fields = ("event_id", "order__id", "order__transaction_id")
    list_select_related = ("order",)
    ordering = ("-id",)
    readonly_fields = (
        "event_id",
        "type",
        "order",
        "key",
        "pretty_payload",
        "created_at",
        "published_at",
        "attempts",
        "last_error",
    )
    exclude = ("payload",)
    actions = ("resend_email",)

    def has_resend_permission(self, request):
        return request.user.has_perm("notifications.change_outboxevent")

    @admin.display(description=_("payload"))
    def pretty_payload(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, ensure_ascii=False))

    @admin.display(description=_("last error"))
    def short_error(self, obj):
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    @admin.action(
        description=_("Publish the selected events again and resend their emails"), permissions=["resend"]
    )
    def resend_email(self, request, queryset):
        done, failures = 0, []
        for event_id in queryset.values_list("event_id", flat=True):
            try:
                outbox_event_resend(event_id=event_id)
            except ShopError as error:
                failures.append((str(event_id), error.message))
            else:
                done += 1
        _report(self, request, done=done, failures=failures)
