"""Reading an outcome event off the ``email-notification`` topic: the consumer's side of the message
that ``orders.outcomes`` writes (see there for its schema; DESIGN.md for the contract's fields).

The header ``request_id`` carries the id of the request (or Celery task) that recorded the outcome
(core/logs.py), when there was one.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from notifications.errors import InvalidMessage, UnknownEventType
from notifications.models import EventType

# The Kafka header with the id of the request that recorded the outcome; dead letters keep it.
REQUEST_ID_HEADER = "request_id"


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
