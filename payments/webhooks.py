"""PayPal's webhooks: verified with PayPal, de-duplicated by event id, then acted on through the same
code paths as the return URL (capture, complete, fail, refunds)."""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.parsers import json_parse
from orders.models import FailureReason, OrderStatus
from orders.outcomes import order_outcome_record
from orders.services import order_fail
from payments import gateway
from payments.errors import (
    PaymentError,
    PaymentGatewayError,
    WebhookRejected,
)
from payments.models import Payment, PaymentStatus, WebhookEvent
from payments.services import (
    _audit,
    _complete_locked,
    _lock,
    _payment_note,
    _payment_sync_refunds,
    _refund_late_capture,
    payment_capture,
)

logger = logging.getLogger(__name__)


class WebhookOutcome(enum.Enum):
    HANDLED = "handled"  # acted on (possibly a no-op: the order was already settled)
    DUPLICATE = "duplicate"  # this event id was processed before: nothing done
    IGNORED = "ignored"  # verified, but not about one of our payments, or of a type we don't use


def payment_handle_webhook(*, headers: Mapping[str, str], body: bytes) -> WebhookOutcome:
    """Verify a PayPal webhook with PayPal, then act on it once per event id.

    ``InvalidJSON`` (the API's JSON parser refused the body) or ``WebhookRejected`` (not an event, bad
    signature): nothing changed, the view answers 400.
    ``PaymentGatewayError`` (PayPal unreachable, to verify or to act): nothing recorded as processed,
    the view answers 503 and PayPal delivers the event again later.
    """
    event = json_parse(body)
    if not isinstance(event, dict) or not event.get("id") or not event.get("event_type"):
        raise WebhookRejected("The webhook body is not a PayPal event.")
    if not gateway.paypal_webhook_verify(headers=headers, event=event, webhook_id=settings.PAYPAL_WEBHOOK_ID):
        raise WebhookRejected("PayPal did not confirm the webhook's signature.")

    record = _webhook_record(event)
    if record.processed_at is not None:
        return WebhookOutcome.DUPLICATE
    outcome, payment = _webhook_dispatch(event)
    WebhookEvent.objects.filter(pk=record.pk).update(
        processed_at=timezone.now(), outcome=outcome.value, payment=payment
    )
    return outcome


def _webhook_record(event: dict) -> WebhookEvent:
    resource = event.get("resource") if isinstance(event.get("resource"), dict) else {}
    defaults = {
        "event_type": str(event["event_type"])[:64],
        "resource_id": str(resource.get("id", ""))[:64],
        "payload": event,
    }
    try:
        with transaction.atomic():
            record, _created = WebhookEvent.objects.get_or_create(
                event_id=str(event["id"]), defaults=defaults
            )
    except IntegrityError:  # the same event delivered twice at once: the other insert won
        record = WebhookEvent.objects.get(event_id=str(event["id"]))
    return record


def _related_order_id(resource: dict) -> str:
    related = (resource.get("supplementary_data") or {}).get("related_ids") or {}
    return related.get("order_id", "") if isinstance(related, dict) else ""


def _related_capture_id(resource: dict) -> str:
    related = (resource.get("supplementary_data") or {}).get("related_ids") or {}
    if isinstance(related, dict) and related.get("capture_id"):
        return related["capture_id"]
    for link in resource.get("links") or []:
        href = link.get("href", "") if isinstance(link, dict) else ""
        if link.get("rel") == "up" and "/captures/" in href:
            return href.rstrip("/").rsplit("/", 1)[-1]
    return ""


def _payment_for(*, provider_order_id: str = "", capture_id: str = "") -> Payment | None:
    if provider_order_id:
        payment = Payment.objects.filter(provider_order_id=provider_order_id).first()
        if payment is not None:
            return payment
    if capture_id:
        return Payment.objects.filter(capture_id=capture_id).first()
    return None


def _webhook_dispatch(event: dict) -> tuple[WebhookOutcome, Payment | None]:
    event_type = event["event_type"]
    resource = event.get("resource") if isinstance(event.get("resource"), dict) else {}
    entry = _audit("webhook", event_id=event["id"], event_type=event_type, resource=resource)

    if event_type == "CHECKOUT.ORDER.APPROVED":
        payment = _payment_for(provider_order_id=resource.get("id", ""))

        def act(order_id):
            payment_capture(order_id=order_id)

    elif event_type in {"PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.DENIED"}:
        capture = gateway.capture_from_json(resource)
        payment = _payment_for(provider_order_id=_related_order_id(resource), capture_id=capture.id)

        def act(order_id):
            if event_type == "PAYMENT.CAPTURE.COMPLETED":
                _capture_completed_by_event(order_id=order_id, capture=capture, entry=entry)
            else:
                order_fail(
                    order_id=order_id,
                    reason=FailureReason.PAYMENT_DECLINED,
                    provider_response=entry,
                    nothing_captured=True,
                )

    elif event_type == "PAYMENT.CAPTURE.REFUNDED":
        payment = _payment_for(
            provider_order_id=_related_order_id(resource), capture_id=_related_capture_id(resource)
        )

        def act(order_id):
            _payment_refunded_by_event(order_id=order_id, entry=entry)

    else:
        return WebhookOutcome.IGNORED, None
    if payment is None:
        return WebhookOutcome.IGNORED, None
    try:
        act(payment.order_id)
    except PaymentGatewayError:
        raise  # answered 503: PayPal delivers the event again later
    except PaymentError as error:
        logger.warning("webhook %s for order %s: %s", event["id"], payment.order_id, error.message)
    return WebhookOutcome.HANDLED, payment


def _capture_completed_by_event(*, order_id: int, capture: gateway.PayPalCapture, entry: dict) -> None:
    """PayPal says ``capture`` of this order is COMPLETED: complete the order, or refund the capture
    if the order had already failed (or was captured for another amount). Idempotent."""
    with transaction.atomic():
        order = _lock(order_id)
        _complete_locked(order, capture, entry)
    if order.status == OrderStatus.FAILED:  # the capture is recorded (and flagged) before the refund
        _refund_late_capture(order_id=order_id, capture_id=capture.id)


@transaction.atomic
def _payment_refunded_by_event(*, order_id: int, entry: dict) -> None:
    """PayPal says a capture of ours was refunded, in part or in full (by us, or by someone in
    PayPal's dashboard): PayPal's order says how much so far, and whether all of it."""
    order = _lock(order_id)
    payment = order.payment
    if payment.status == PaymentStatus.REFUNDED:
        return
    if order.status == OrderStatus.PENDING or not payment.provider_order_id:
        # A refund before we even saw the capture: nothing to refund or deduct; keep it for audit.
        _payment_note(payment, entry)
        return
    _payment_sync_refunds(
        payment, gateway.paypal_order_get(provider_order_id=payment.provider_order_id), entry
    )
    if payment.status == PaymentStatus.REFUNDED and order.status == OrderStatus.FAILED:
        order_outcome_record(order=order)
