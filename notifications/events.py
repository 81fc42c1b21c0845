"""The order outcome event on the ``email-notification`` topic (the DESIGN.md contract).

    {event_id, type: "order.succeeded" | "order.failed", occurred_at,
     order: {id, transaction_id, total, currency, lines: [{product, name, quantity, unit_price, total}]},
     user: {id, email, language},
     reason: {code, message} | null}

Amounts are decimal strings ("25.00"), times ISO 8601 with their offset, the key is the order id. The
header ``request_id`` carries the id of the request (or Celery task) that recorded the outcome
(core/logs.py), when there was one.
Lines have the same shape as in the orders API.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.utils import translation
from django.utils.translation import gettext_lazy as _

from notifications.errors import InvalidMessage, OrderNotFinal, UnknownEventType
from notifications.models import EventType
from orders.models import FailureReason, Order, OrderLine, OrderStatus

# The Kafka header with the id of the request that recorded the outcome; dead letters keep it.
REQUEST_ID_HEADER = "request_id"

REFUNDED_TEXT = _(
    "A payment for this order reached us after the order had been closed; we refunded it in full. "
    "Depending on your bank, the refund can take a few days to appear."
)

NOT_CHARGED_TEXT = _("Nothing was charged.")

# What went wrong, and what the shopper can do next, per failure reason.
REASON_TEXT = {
    FailureReason.PAYMENT_DECLINED: (
        _("Your payment was declined."),
        _(
            "You can place the order again and pay with another card or "
            "PayPal funding source, or ask your bank why the payment was refused."
        ),
    ),
    FailureReason.PAYMENT_CANCELLED: (
        _("The payment was cancelled at PayPal."),
        _("If you still want these products, place the order again."),
    ),
    FailureReason.RESERVATION_EXPIRED: (
        _("The order was not paid in time, so the products we were holding for you went back on sale."),
        _("You can place the order again while the products are in stock."),
    ),
    FailureReason.GATEWAY_ERROR: (
        _("We could not reach PayPal to complete your payment."),
        _("Please try again in a few minutes; if it keeps failing, reply to this email and we will help."),
    ),
    FailureReason.CANCELLED_BY_SHOPPER: (
        _("You cancelled the order."),
        _("You can place a new order at any time."),
    ),
    FailureReason.CANCELLED_BY_STAFF: (
        _("We cancelled the order: we could not complete it."),
        _(
            "Nothing was charged. If you still want these products, place the order again, or reply "
            "to this email and we will help."
        ),
    ),
    FailureReason.AMOUNT_MISMATCH: (
        _("PayPal charged an amount that differs from your order's total, so we could not take the payment."),
        _("The whole payment goes back to your PayPal account. You can place the order again."),
    ),
}
# Failures for which PayPal did take the payer's money (it is refunded): never "Nothing was charged",
# and their own words once the refund is done.
CHARGED_REFUNDED_TEXT = {
    FailureReason.AMOUNT_MISMATCH: _(
        "We refunded that payment in full. Depending on your bank, the refund can take a few days to appear."
    ),
}
UNKNOWN_REASON_TEXT = (
    _("The order could not be completed."),
    _("Please place the order again, or reply to this email if you need help."),
)


EVENT_TYPE_BY_STATUS = {
    OrderStatus.SUCCESS: EventType.ORDER_SUCCEEDED,
    OrderStatus.FAILED: EventType.ORDER_FAILED,
}


def event_type_for(order: Order) -> EventType:
    try:
        return EVENT_TYPE_BY_STATUS[order.status]
    except KeyError:
        raise OrderNotFinal(order_id=order.pk) from None


def refunded_text(code: str | None):
    """What the shopper reads about a refund of the order's payment."""
    return CHARGED_REFUNDED_TEXT.get(code, REFUNDED_TEXT)


def not_charged_text(code: str | None):
    """ "Nothing was charged", unless PayPal did take money for this failure (it is refunded)."""
    return "" if code in CHARGED_REFUNDED_TEXT else NOT_CHARGED_TEXT


def reason_message(code: str, *, language: str, refunded: bool = False) -> str:
    """A sentence for people (the shopper, staff reading the topic), in the shopper's language."""
    what_happened, _next_steps = REASON_TEXT.get(code, UNKNOWN_REASON_TEXT)
    with translation.override(language):
        return f"{what_happened} {refunded_text(code)}" if refunded else str(what_happened)


def order_outcome_message(
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
        reason = {
            "code": order.failure_reason,
            "message": reason_message(order.failure_reason, language=order.language, refunded=refunded),
        }
    return {
        "event_id": str(event_id),
        "type": str(event_type),
        "occurred_at": occurred_at.isoformat(),
        "order": {
            "id": order.pk,
            "transaction_id": str(order.transaction_id),
            "total": f"{order.total:.2f}",
            "currency": order.currency,
            "lines": [
                {
                    "product": line.product_id,
                    "name": line.product_name,
                    "quantity": line.quantity,
                    "unit_price": f"{line.unit_price:.2f}",
                    "total": f"{line.line_total:.2f}",
                }
                for line in (order.lines.all() if lines is None else lines)
            ],
        },
        "user": {
            "id": order.user_id,
            "email": order.user.email if email is None else email,
            "language": order.language,
        },
        "reason": reason,
    }


@dataclass(frozen=True)
class OrderOutcomeEvent:
    """A parsed and checked event, as the email consumer sees it."""

    event_id: uuid.UUID
    type: EventType
    order_id: int
    recipient: str
    language: str
    reason_code: str | None
    payload: dict


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise InvalidMessage(f"The message is not a valid order outcome event: {what}.")


def _is_amount(value) -> bool:
    try:
        Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return False
    return isinstance(value, str)


def order_outcome_parse(raw: bytes | str | None) -> OrderOutcomeEvent:
    """Parse a message off the topic; raise a ``PoisonMessage`` when it cannot be an outcome event."""
    if raw is None:
        raise InvalidMessage("The message has no value.")
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidMessage(f"The message is not JSON: {error}.") from None
    _require(isinstance(payload, dict), "not a JSON object")
    try:
        event_id = uuid.UUID(str(payload.get("event_id")))
    except ValueError:
        raise InvalidMessage("The message has no valid event_id.") from None
    if payload.get("type") not in EventType.values:
        raise UnknownEventType(f"Unknown event type {payload.get('type')!r}.", event_id=str(event_id))
    order, user = payload.get("order"), payload.get("user")
    _require(isinstance(order, dict) and isinstance(user, dict), "order and user must be objects")
    _require(isinstance(order.get("id"), int) and not isinstance(order.get("id"), bool), "order.id")
    _require(_is_amount(order.get("total")) and isinstance(order.get("currency"), str), "order total")
    lines = order.get("lines")
    _require(isinstance(lines, list), "order.lines must be a list")
    for line in lines:
        _require(isinstance(line, dict), "each line must be an object")
        _require(isinstance(line.get("name"), str) and isinstance(line.get("quantity"), int), "line")
        _require(_is_amount(line.get("unit_price")) and _is_amount(line.get("total")), "line amounts")
    _require(isinstance(user.get("email"), str), "user.email")
    reason = payload.get("reason")
    if payload["type"] == EventType.ORDER_FAILED:
        _require(isinstance(reason, dict) and isinstance(reason.get("code"), str), "a failure needs a reason")
    return OrderOutcomeEvent(
        event_id=event_id,
        type=EventType(payload["type"]),
        order_id=order["id"],
        recipient=user["email"].strip(),
        language=str(user.get("language") or "en"),
        reason_code=reason["code"] if isinstance(reason, dict) else None,
        payload=payload,
    )
