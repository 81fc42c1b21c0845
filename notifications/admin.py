"""Staff admin of outcome emails: see what was published and mailed, and send an email again.

Everything is read-only; the one action goes through ``notifications.services``. The orders admin
shows each order's deliveries with ``EmailDeliveryInline``.
"""

import json

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.admin import ActionRow, ReadOnlyAdminMixin, RowOutcome, done, run_on_each
from notifications.delivery import email_delivery_resend, outbox_event_resend
from notifications.models import EmailDelivery, OutboxEvent

__all__ = ["EmailDeliveryAdmin", "EmailDeliveryInline", "OutboxEventAdmin"]


class EmailDeliveryInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The outcome emails of an order, for ``checkout.order_admin.OrderAdmin``."""

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


def _resend(service, **key) -> RowOutcome:
    service(**key)
    return done(gettext("the email will be sent again."))


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
        # Fields stay read-only for everyone; sending again takes its own permission.
        return request.user.has_perm("notifications.resend_email")

    @admin.action(description=_("Resend the selected emails"), permissions=["resend"])
    def resend_email(self, request, queryset):
        rows = [ActionRow(pk, f"#{pk}") for pk in queryset.values_list("id", flat=True)]
        run_on_each(self, request, rows, lambda row: _resend(email_delivery_resend, delivery_id=row.pk))


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "type", "order", "created_at", "published_at", "attempts", "short_error")
    list_filter = ("type", ("published_at", admin.EmptyFieldListFilter))
    search_fields = ("event_id", "order__id", "order__transaction_id", "=request_id")
    list_select_related = ("order",)
    ordering = ("-id",)
    readonly_fields = (
        "event_id",
        "type",
        "order",
        "key",
        "request_id",
        "pretty_payload",
        "created_at",
        "published_at",
        "attempts",
        "last_error",
    )
    exclude = ("payload",)
    actions = ("resend_email",)

    def has_resend_permission(self, request):
        return request.user.has_perm("notifications.resend_email")

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
        events = dict(queryset.values_list("id", "event_id"))
        rows = [ActionRow(pk, str(event_id)) for pk, event_id in events.items()]
        run_on_each(self, request, rows, lambda row: _resend(outbox_event_resend, event_id=events[row.pk]))
