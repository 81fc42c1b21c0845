"""The PayPal flows of the checkout: start, capture, settle expired orders, webhooks, refunds.

PayPal is reached only through ``payments.gateway``; orders change state only through
``orders.services`` (``order_complete`` / ``order_fail``), which release or consume the stock holds
and record the outcome email in the outbox.

Locks and network calls. A capture is made while holding the ORDER row lock (``order_lock``) and
nothing else: the expiry sweep takes order rows with SKIP LOCKED, so it never releases a hold under
a capture in flight, and two returns (or a return and a webhook) never capture twice. Stock rows are
locked only by ``order_complete`` / ``order_fail``, after the network call and in the same
transaction, so no stock lock is ever held across a call to PayPal. If that transaction rolls back
after PayPal captured, nothing is lost: the capture's ``PayPal-Request-Id`` makes the next attempt
replay PayPal's answer, and the expiry sweep reads the PayPal order before releasing anything.

Refunds of a capture that landed on an order that had already failed run after the transaction that
recorded the capture, in their own transaction that locks the order row only.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from notifications.services import outbox_record_order_outcome
from orders.lock_objects import order_lock
from orders.models import FailureReason, Order, OrderStatus
from orders.services import CompletionResult, order_complete, order_fail
from payments import gateway
from payments.errors import (
    PaymentAlreadyCaptured,
    PaymentDeclined,
    PaymentError,
    PaymentGatewayError,
    PaymentNotFound,
    PaymentNotRefundable,
    PaymentNotStarted,
    PaymentProviderNotFound,
    PaymentRejected,
    WebhookRejected,
)
from payments.models import Payment, PaymentStatus, WebhookEvent
from shop.parsers import json_parse

logger = logging.getLogger(__name__)


class WebhookOutcome(enum.Enum):
    HANDLED = "handled"  # acted on (possibly a no-op: the order was already settled)
    DUPLICATE = "duplicate"  # this event id was processed before: nothing done
    IGNORED = "ignored"  # verified, but not about one of our payments, or of a type we don't use


# --- Helpers -------------------------------------------------------------------------------------------


def _audit(operation: str, **data) -> dict:
    return {"at": timezone.now().isoformat(), "operation": operation, **data}


def _payment_note(payment: Payment, entry: dict, **fields) -> None:
    """Append ``entry`` to the payment's audit trail and save it with ``fields``; caller holds the lock."""
    for name, value in fields.items():
        setattr(payment, name, value)
    payment.provider_responses = [*payment.provider_responses, entry]
    payment.save(update_fields=[*fields, "provider_responses", "updated_at"])


def _lock(order_id: int) -> Order:
    try:
        return order_lock(order_id=order_id)
    except Order.DoesNotExist as error:
        raise PaymentNotFound("No such order.") from error


def _order(order_id: int) -> Order:
    return Order.objects.select_related("payment", "user").get(pk=order_id)


def _site_url(url_name: str) -> str:
    return f"{settings.SITE_URL.rstrip('/')}{reverse(url_name)}"


# --- Start ---------------------------------------------------------------------------------------------


def payment_start(*, order_id: int) -> Payment:
    """Create the PayPal order of a freshly placed PENDING order; answers its payment, with
    ``approval_url`` set. Called again it returns the same payment (and PayPal the same order).

    Amount and items come from the order's own lines and total. If PayPal cannot be reached (or
    refuses the order), the order fails with ``gateway_error``, its stock returns, and
    ``PaymentGatewayError`` is raised.
    """
    try:
        order = Order.objects.select_related("payment").get(pk=order_id)
    except Order.DoesNotExist as error:
        raise PaymentNotFound("No such order.") from error
    payment = order.payment
    if payment.provider_order_id or order.status != OrderStatus.PENDING:
        return payment

    lines = [
        gateway.PurchaseLine(
            name=line.product_name, sku=line.product.sku, quantity=line.quantity, unit_price=line.unit_price
        )
        for line in order.lines.select_related("product").order_by("id")
    ]
    try:
        created = gateway.paypal_order_create(
            transaction_id=order.transaction_id,
            reference=str(order.pk),
            currency=order.currency,
            total=order.total,
            lines=lines,
            return_url=_site_url("paypal-return"),
            cancel_url=_site_url("paypal-cancel"),
        )
        if not created.approval_url:
            raise PaymentGatewayError(
                "PayPal created the order without an approval link.",
                issue="NO_APPROVAL_LINK",
                response=created.raw,
            )
    except PaymentError as error:
        logger.warning("PayPal order for order %s not created: %s %s", order.pk, error.issue, error.message)
        order_fail(
            order_id=order.pk,
            reason=FailureReason.GATEWAY_ERROR,
            provider_response=_audit("create", **error.audit()),
        )
        raise PaymentGatewayError(
            "PayPal could not be reached, so the order was cancelled and its items went back on sale. "
            "Nothing was charged; please try again in a few minutes.",
            issue=error.issue,
            status_code=error.status_code,
            debug_id=error.debug_id,
        ) from error
    return _payment_record_created(order_id=order.pk, created=created)


@transaction.atomic
def _payment_record_created(*, order_id: int, created: gateway.PayPalOrder) -> Payment:
    order = _lock(order_id)
    payment = order.payment
    if not payment.provider_order_id:
        _payment_note(
            payment,
            _audit("create", response=created.raw),
            provider_order_id=created.id,
            approval_url=created.approval_url,
        )
    return payment


# --- Capture -------------------------------------------------------------------------------------------


def payment_capture(*, order_id: int) -> Order:
    """Capture the payment of an order whose PayPal order was approved, and settle the order.

    The one path shared by the return URL, the ``CHECKOUT.ORDER.APPROVED`` webhook and the expiry
    sweep. Repeating it gives one capture and one outcome. Raises ``PaymentGatewayError`` when PayPal
    cannot be reached (the order stays PENDING, settled later by a webhook or by the expiry sweep)
    and ``PaymentNotApproved`` when the payer has not approved the PayPal order yet.
    """
    with transaction.atomic():
        order = _lock(order_id)
        payment = order.payment
        if order.status == OrderStatus.PENDING:
            if not payment.provider_order_id:
                raise PaymentNotStarted()
            _capture_locked(order)
            return _order(order_id)
    if order.status == OrderStatus.FAILED and payment.status == PaymentStatus.FAILED and payment.capture_id:
        # A capture landed on this order after it failed, and its refund has not happened yet
        # (PayPal was unreachable when it was first tried).
        _refund_late_capture(order_id=order_id, capture_id=payment.capture_id)
    return _order(order_id)


def _capture_locked(order: Order) -> None:
    """Capture at PayPal and settle; the caller holds the order's row lock in its transaction."""
    payment = order.payment
    try:
        paypal_order = gateway.paypal_order_capture(
            provider_order_id=payment.provider_order_id, transaction_id=payment.transaction_id
        )
    except PaymentDeclined as error:
        order_fail(
            order_id=order.pk,
            reason=FailureReason.PAYMENT_DECLINED,
            provider_response=_audit("capture", **error.audit()),
        )
        return
    except PaymentAlreadyCaptured:
        # Captured by an earlier call whose answer we lost (another request id would say so too).
        paypal_order = gateway.paypal_order_get(provider_order_id=payment.provider_order_id)
    else:
        if paypal_order.captures and not (paypal_order.completed_capture or paypal_order.declined_capture):
            # A capture held for review; this answer may be a replay of the first one, so ask
            # PayPal where the capture stands now.
            paypal_order = gateway.paypal_order_get(provider_order_id=payment.provider_order_id)
    _settle_locked(order, paypal_order, operation="capture")


def _settle_locked(order: Order, paypal_order: gateway.PayPalOrder, *, operation: str) -> None:
    """Act on what PayPal says about the order's captures; the caller holds the order's row lock.

    Only a capture whose own status is COMPLETED completes the order. A capture held for review
    (PENDING) leaves the order PENDING: ``PAYMENT.CAPTURE.COMPLETED`` / ``DENIED`` settles it, or the
    expiry sweep when it reads the PayPal order again.
    """
    entry = _audit(operation, response=paypal_order.raw)
    capture = paypal_order.completed_capture
    if capture is not None:
        result = order_complete(order_id=order.pk, capture_id=capture.id, provider_response=entry)
        order.refresh_from_db()
        if result == CompletionResult.ORDER_FAILED:  # not while we hold the lock of a PENDING order
            logger.error("capture %s landed on failed order %s", capture.id, order.pk)
        return
    if paypal_order.declined_capture is not None:
        order_fail(order_id=order.pk, reason=FailureReason.PAYMENT_DECLINED, provider_response=entry)
        order.refresh_from_db()
        return
    pending = paypal_order.pending_capture
    _payment_note(order.payment, entry, **({"capture_id": pending.id} if pending else {}))
    logger.info(
        "order %s: PayPal order %s is %s, capture %s",
        order.pk,
        paypal_order.id,
        paypal_order.status,
        pending.status if pending else "none",
    )


def _complete_or_refund(*, order_id: int, capture_id: str, entry: dict) -> Order:
    """A capture is known to be COMPLETED (a webhook told us): complete the order, or refund the
    capture if the order had already failed. Both are idempotent."""
    result = order_complete(order_id=order_id, capture_id=capture_id, provider_response=entry)
    if result == CompletionResult.ORDER_FAILED:
        _refund_late_capture(order_id=order_id, capture_id=capture_id)
    return _order(order_id)


def _refund_late_capture(*, order_id: int, capture_id: str) -> None:
    """Refund a capture that landed on an order that had already FAILED; the payment becomes REFUNDED
    and the shopper is told. Raises ``PaymentGatewayError`` if PayPal cannot be reached: the caller
    (a webhook PayPal will deliver again, a return) comes back to it."""
    with transaction.atomic():
        order = _lock(order_id)
        payment = order.payment
        if order.status != OrderStatus.FAILED or payment.status == PaymentStatus.REFUNDED:
            return
        refund = gateway.paypal_capture_refund(
            capture_id=capture_id,
            transaction_id=payment.transaction_id,
            note="Your order could not be completed, so your payment was refunded.",
        )
        _payment_refunded(payment, refund, capture_id=capture_id)
        outbox_record_order_outcome(order=order)
    logger.warning(
        "order %s had failed when capture %s landed: refunded (%s)", order_id, capture_id, refund.id
    )


def _payment_refunded(payment: Payment, refund: gateway.PayPalRefund, *, capture_id: str) -> None:
    if refund.status not in {"COMPLETED", "PENDING"}:
        raise PaymentRejected(
            f"PayPal did not refund the capture (refund {refund.id} is {refund.status}).",
            issue=f"REFUND_{refund.status}",
            response=refund.raw,
        )
    _payment_note(
        payment,
        _audit("refund", response=refund.raw),
        status=PaymentStatus.REFUNDED,
        refund_id=refund.id,
        capture_id=capture_id,
    )


# --- Cancel, expire, refund ----------------------------------------------------------------------------


def payment_cancel(*, order_id: int) -> Order:
    """The payer came back through the cancel URL: the order fails (``payment_cancelled``) and its
    stock returns. A no-op on an order that is already final (e.g. paid meanwhile)."""
    return order_fail(
        order_id=order_id, reason=FailureReason.PAYMENT_CANCELLED, provider_response=_audit("cancel_url")
    )


def payment_settle_expired(*, order_id: int) -> Order | None:
    """Settle a PENDING order whose hold expired and that has a PayPal order: for the expiry sweep.

    Returns ``None`` when the order's row is locked (a capture is in flight: it settles the order).
    PayPal is asked first, because the payer may have approved or paid meanwhile:

    - APPROVED: capture and complete (exactly as the return URL would);
    - COMPLETED: complete on a COMPLETED capture, fail on a declined one, wait on a PENDING one;
    - anything else (CREATED, PAYER_ACTION_REQUIRED, VOIDED, or PayPal no longer knows the order):
      fail with ``reservation_expired``: nothing was captured.

    PayPal unreachable: the order stays PENDING and ``PaymentGatewayError`` is raised, so the next
    sweep asks again, because PayPal may hold a capture we have not heard of. After
    ``PAYPAL_SETTLE_GRACE_SECONDS`` past its hold the order is failed anyway, so that an outage does
    not keep stock off sale for ever; a capture that surfaces later (``PAYMENT.CAPTURE.COMPLETED``, a
    return) lands on the failed order and is refunded.
    """
    now = timezone.now()
    with transaction.atomic():
        try:
            order = order_lock(order_id=order_id, skip_locked=True)
        except Order.DoesNotExist as error:
            raise PaymentNotFound("No such order.") from error
        if order is None:
            return None
        if order.status != OrderStatus.PENDING or order.reserved_until > now:
            return order
        payment = order.payment
        if not payment.provider_order_id:
            order_fail(order_id=order.pk, reason=FailureReason.RESERVATION_EXPIRED)
            return _order(order_id)
        try:
            paypal_order = gateway.paypal_order_get(provider_order_id=payment.provider_order_id)
        except PaymentProviderNotFound as error:
            order_fail(
                order_id=order.pk,
                reason=FailureReason.RESERVATION_EXPIRED,
                provider_response=_audit("get", **error.audit()),
            )
            return _order(order_id)
        except PaymentGatewayError as error:
            grace = timedelta(seconds=settings.PAYPAL_SETTLE_GRACE_SECONDS)
            if now < order.reserved_until + grace:
                raise
            logger.warning("order %s: PayPal unreachable past the grace period; failing it", order.pk)
            order_fail(
                order_id=order.pk,
                reason=FailureReason.RESERVATION_EXPIRED,
                provider_response=_audit("get", **error.audit()),
            )
            return _order(order_id)
        if paypal_order.status == "APPROVED":
            _capture_locked(order)
        elif paypal_order.status == "COMPLETED":
            _settle_locked(order, paypal_order, operation="get")
        else:
            order_fail(
                order_id=order.pk,
                reason=FailureReason.RESERVATION_EXPIRED,
                provider_response=_audit("get", response=paypal_order.raw),
            )
    return _order(order_id)


def payment_refund(*, order_id: int) -> Payment:
    """Staff refund the whole captured payment of a paid order through PayPal; the payment becomes
    REFUNDED (the order stays SUCCESS: the goods were sold). Refunding again is a no-op."""
    with transaction.atomic():
        order = _lock(order_id)
        payment = order.payment
        if payment.status == PaymentStatus.REFUNDED:
            return payment
        if payment.status != PaymentStatus.SUCCESS or not payment.capture_id:
            raise PaymentNotRefundable()
        refund = gateway.paypal_capture_refund(
            capture_id=payment.capture_id, transaction_id=payment.transaction_id, note="Refunded by the shop."
        )
        _payment_refunded(payment, refund, capture_id=payment.capture_id)
    return payment


# --- Webhooks ------------------------------------------------------------------------------------------


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
        if payment is None:
            return WebhookOutcome.IGNORED, None
        try:
            payment_capture(order_id=payment.order_id)
        except PaymentGatewayError:
            raise
        except PaymentError as error:
            logger.warning("webhook %s for order %s: %s", event["id"], payment.order_id, error.message)
        return WebhookOutcome.HANDLED, payment

    if event_type in {"PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.DENIED"}:
        capture = gateway.capture_from_json(resource)
        payment = _payment_for(provider_order_id=_related_order_id(resource), capture_id=capture.id)
        if payment is None:
            return WebhookOutcome.IGNORED, None
        if event_type == "PAYMENT.CAPTURE.COMPLETED":
            _complete_or_refund(order_id=payment.order_id, capture_id=capture.id, entry=entry)
        else:
            order_fail(
                order_id=payment.order_id, reason=FailureReason.PAYMENT_DECLINED, provider_response=entry
            )
        return WebhookOutcome.HANDLED, payment

    if event_type == "PAYMENT.CAPTURE.REFUNDED":
        payment = _payment_for(
            provider_order_id=_related_order_id(resource), capture_id=_related_capture_id(resource)
        )
        if payment is None:
            return WebhookOutcome.IGNORED, None
        _payment_refunded_by_event(order_id=payment.order_id, refund_id=resource.get("id", ""), entry=entry)
        return WebhookOutcome.HANDLED, payment

    return WebhookOutcome.IGNORED, None


@transaction.atomic
def _payment_refunded_by_event(*, order_id: int, refund_id: str, entry: dict) -> None:
    """PayPal says a capture of ours was refunded (by us, or by someone in PayPal's dashboard)."""
    order = _lock(order_id)
    payment = order.payment
    if payment.status == PaymentStatus.REFUNDED:
        return
    if order.status == OrderStatus.PENDING:
        # A refund before we even saw the capture: nothing to refund or deduct; keep it for audit.
        _payment_note(payment, entry)
        return
    _payment_note(payment, entry, status=PaymentStatus.REFUNDED, refund_id=refund_id or payment.refund_id)
    if order.status == OrderStatus.FAILED:
        outbox_record_order_outcome(order=order)
