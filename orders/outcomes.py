"""The outcome event of an order: built here, by the domain that owns orders, and handed to the
notifications outbox, which carries it to Kafka and the email consumer without knowing what an order
is. The message holds everything the email needs (lines, totals, the shopper's address and language,
the reason and what to do next in that language, whether the money was refunded), so the consumer
renders from the message alone.

    {schema_version: 2, event_id, type: "order.succeeded" | "order.failed", occurred_at,
     order: {id, transaction_id, total, currency, url, lines: [{product, name, quantity, unit_price, total}]},
     user: {id, email, language},
     refunded: bool,
     reason: {code, message, happened, next_steps, refund_note, not_charged_note} | null}

``reason.message`` (the contract of DESIGN.md) is ``happened`` followed by ``refund_note`` when the
money was refunded. Amounts are decimal strings, times ISO 8601 with their offset, the key the order id.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation

from notifications.delivery import event_resend
from notifications.emails import RenderedEmail, order_outcome_render
from notifications.events import order_outcome_parse
from notifications.models import EventType, OutboxEvent
from notifications.outbox import NewEvent, outbox_record
from orders.errors import OrderNotFinal, OrderNotFound
from orders.models import FailureReason, Order, OrderLine, OrderStatus
from orders.reasons import not_charged_text, reason_text, refunded_text

SCHEMA_VERSION = 2
REFUNDED = "REFUNDED"  # payments.models.PaymentStatus.REFUNDED, read through the order's relation

EVENT_TYPE_BY_STATUS = {
    OrderStatus.SUCCESS: EventType.ORDER_SUCCEEDED,
    OrderStatus.FAILED: EventType.ORDER_FAILED,
}


def event_type_for(order: Order) -> EventType:
    try:
        return EVENT_TYPE_BY_STATUS[order.status]
    except KeyError:
        raise OrderNotFinal(order_id=order.pk) from None


def _order_url(order_id: int) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("order-detail", kwargs={"pk": order_id})


def reason_payload(code: str, *, language: str, refunded: bool) -> dict:
    """The message's ``reason``: what happened and what to do next, in ``language``."""
    text = reason_text(code)
    with translation.override(language):
        happened = str(text.happened)
        refund_note = str(refunded_text(code)) if refunded else ""
        return {
            "code": code,
            "message": f"{happened} {refund_note}" if refund_note else happened,
            "happened": happened,
            "next_steps": str(text.next_email),
            "refund_note": refund_note,
            "not_charged_note": "" if refunded else str(not_charged_text(code)),
        }


def order_outcome_payload(
    *,
    order: Order,
    event_id: uuid.UUID,
    occurred_at: datetime,
    refunded: bool = False,
    lines: list[OrderLine] | None = None,
    email: str | None = None,
) -> dict:
    """The event for the final ``order``; its ``lines`` and user ``email`` are read unless given."""
    event_type = event_type_for(order)
    reason = None
    if event_type == EventType.ORDER_FAILED:
        reason = reason_payload(order.failure_reason, language=order.language, refunded=refunded)
    return _payload(
        order=order,
        event_type=event_type,
        event_id=event_id,
        occurred_at=occurred_at,
        url=_order_url(order.pk),
        lines=[
            _line(line.product_id, line.product_name, line.quantity, line.unit_price)
            for line in (order.lines.all() if lines is None else lines)
        ],
        email=order.user.email if email is None else email,
        refunded=refunded,
        reason=reason,
    )


def _payload(*, order, event_type, event_id, occurred_at, url, lines, email, refunded, reason) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": str(event_id),
        "type": str(event_type),
        "occurred_at": occurred_at.isoformat(),
        "order": {
            "id": order.pk,
            "transaction_id": str(order.transaction_id),
            "total": f"{order.total:.2f}",
            "currency": order.currency,
            "url": url,
            "lines": lines,
        },
        "user": {"id": order.user_id, "email": email, "language": order.language},
        "refunded": refunded,
        "reason": reason,
    }


def _line(product_id: int, name: str, quantity: int, unit_price: Decimal) -> dict:
    return {
        "product": product_id,
        "name": name,
        "quantity": quantity,
        "unit_price": f"{unit_price:.2f}",
        "total": f"{unit_price * quantity:.2f}",  # OrderLine.line_total
    }


def _order_urls() -> Callable[[int], str]:
    """``_order_url`` for many orders: the URL resolved once (an order's differs only by its id)."""
    marker = 987654321987654321
    head, _, tail = _order_url(marker).rpartition(str(marker))
    return lambda order_id: f"{head}{order_id}{tail}"


def _refunded(order_ids: list[int]) -> set[int]:
    """Which of these orders had their money refunded (read now: it may have been saved elsewhere)."""
    return set(Order.objects.filter(pk__in=order_ids, payment__status=REFUNDED).values_list("pk", flat=True))


def order_outcomes_record(*, orders: list[Order]) -> list[OutboxEvent]:
    """Record the final outcome of each of ``orders`` for its email, in the caller's transaction: four
    queries whatever their number. Raises ``OrderNotFinal`` before writing anything.

    Call it again after a late capture of a failed order was refunded, and the email says so. Nothing
    leaves the process here: after the commit the outbox relay publishes the events; if the
    transaction rolls back, no event existed.
    """
    orders = list(orders)
    if not orders:
        return []
    types = [event_type_for(order) for order in orders]  # OrderNotFinal for a pending order
    order_ids = [order.pk for order in orders]
    lines: dict[int, list[dict]] = defaultdict(list)
    for order_id, *line in (
        OrderLine.objects.filter(order_id__in=order_ids)
        .order_by("order_id", "id")
        .values_list("order_id", "product_id", "product_name", "quantity", "unit_price")
    ):
        lines[order_id].append(_line(*line))
    emails = dict(
        get_user_model().objects.filter(pk__in={order.user_id for order in orders}).values_list("pk", "email")
    )
    refunded = _refunded(order_ids)
    now = timezone.now()
    url = _order_urls()
    reasons: dict[tuple[str, str, bool], dict] = {}  # the same few texts for the whole batch
    events = []
    for order, event_type in zip(orders, types, strict=True):
        event_id = uuid.uuid4()
        order_refunded = order.pk in refunded
        reason = None
        if event_type == EventType.ORDER_FAILED:
            key = (order.failure_reason, order.language, order_refunded)
            if key not in reasons:
                reasons[key] = reason_payload(key[0], language=key[1], refunded=key[2])
            reason = dict(reasons[key])
        payload = _payload(
            order=order,
            event_type=event_type,
            event_id=event_id,
            occurred_at=now,
            url=url(order.pk),
            lines=lines[order.pk],
            email=emails.get(order.user_id, ""),
            refunded=order_refunded,
            reason=reason,
        )
        events.append(
            NewEvent(
                event_id=event_id, type=event_type, key=str(order.pk), order_id=order.pk, payload=payload
            )
        )
    return outbox_record(events=events)


def order_outcome_record(*, order: Order) -> OutboxEvent:
    """``order_outcomes_record`` for one order."""
    (event,) = order_outcomes_record(orders=[order])
    return event


@transaction.atomic
def order_outcome_resend(*, order_id: int) -> OutboxEvent:
    """Staff: send the latest outcome email of this order again (recorded now if it never was)."""
    order = Order.objects.select_related("user").filter(pk=order_id).first()
    if order is None:
        raise OrderNotFound()
    if not order.is_final:
        raise OrderNotFinal(order_id=order_id)
    latest = OutboxEvent.objects.filter(order_id=order.pk).order_by("-id").first()
    if latest is None:
        return order_outcome_record(order=order)
    return event_resend(event_id=latest.event_id)


def order_outcome_preview(*, order: Order, event_type: str, language: str, reason: str = "") -> RenderedEmail:
    """The email ``order`` would get (or got) for an outcome, in ``language``: for staff to read before
    and after. Built from the same message and templates as the real one; nothing is recorded or sent."""
    preview = copy.copy(order)
    preview.language = language
    if event_type == EventType.ORDER_SUCCEEDED:
        preview.status, preview.failure_reason = OrderStatus.SUCCESS, ""
    else:
        preview.status = OrderStatus.FAILED
        preview.failure_reason = reason or order.failure_reason or FailureReason.PAYMENT_DECLINED
    refunded = event_type == EventType.ORDER_FAILED and bool(_refunded([order.pk]))
    payload = order_outcome_payload(
        order=preview,
        event_id=uuid.uuid4(),
        occurred_at=timezone.now(),
        refunded=refunded,
        lines=list(order.lines.all()),
    )
    return order_outcome_render(event=order_outcome_parse(json.dumps(payload)))
