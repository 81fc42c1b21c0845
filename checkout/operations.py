"""The staff's operations page (``/admin/operations/``): how the shop is doing, in one look.

Pending orders and the units they hold, orders failed today by reason, the outbox backlog and the
age of its oldest event, dead-lettered emails, the last run of each periodic task, and the last
stock audit. Reads only, a handful of aggregate queries.
"""

from datetime import datetime, time

from django.contrib import admin
from django.db.models import Count, Min, Sum
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django_celery_beat.models import PeriodicTask

from checkout.models import StockAudit
from inventory.models import ReservedStock
from notifications.models import DeliveryStatus, EmailDelivery, OutboxEvent
from orders.models import FailureReason, Order, OrderStatus


def _reason_label(code: str) -> str:
    return FailureReason(code).label if code in FailureReason.values else code


def operations_snapshot(*, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    start_of_day = timezone.make_aware(datetime.combine(timezone.localdate(now), time.min))
    pending = Order.objects.filter(status=OrderStatus.PENDING)
    failed_today = (
        Order.objects.filter(status=OrderStatus.FAILED, completed_at__gte=start_of_day)
        .values_list("failure_reason")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    backlog = OutboxEvent.objects.filter(published_at__isnull=True).aggregate(
        n=Count("id"), oldest=Min("created_at")
    )
    return {
        "pending_orders": pending.count(),
        "pending_overdue": pending.filter(reserved_until__lte=now).count(),
        "held_units": ReservedStock.objects.aggregate(n=Sum("quantity"))["n"] or 0,
        "failed_today": [(code, _reason_label(code), n) for code, n in failed_today],
        "outbox_backlog": backlog["n"],
        "outbox_oldest_age": str(now - backlog["oldest"]).split(".")[0] if backlog["oldest"] else "",
        "dead_lettered_emails": EmailDelivery.objects.filter(status=DeliveryStatus.FAILED).count(),
        "periodic_tasks": list(PeriodicTask.objects.order_by("name")),
        "last_audit": StockAudit.objects.order_by("-ran_at", "-id").first(),
    }


def operations_view(request):
    context = {
        **admin.site.each_context(request),
        "title": _("Operations"),
        **operations_snapshot(),
    }
    return TemplateResponse(request, "admin/operations.html", context)
