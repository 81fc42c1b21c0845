"""The PayPal flows of the checkout: place, start, capture, settle expired orders, reconcile, webhooks,
refunds.

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

Settlement. Every PayPal refusal is final or not (``PaymentError.final``, by PayPal's issue name: see
``gateway.ISSUE_ERRORS``): a final one settles the order at once; anything else leaves it PENDING
for the next try, and past ``reserved_until + PAYPAL_SETTLE_GRACE_SECONDS`` the sweep fails it
whatever PayPal answers. A FAILED order whose PayPal order may still hold money (a capture whose
answer was lost, one held for review, one not refunded yet) has its payment flagged
``needs_reconciliation``: the sweep asks PayPal again and refunds what it finds. A capture whose
amount or currency is not the payment's is refunded and its order fails (``amount_mismatch``).

Refunds of a capture that landed on an order that had already failed run under that order's row
lock only, after the transaction that recorded the capture.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from core.parsers import json_parse
from notifications.services import outbox_record_order_outcome
from orders.errors import OutOfStock
from orders.lock_objects import order_lock
from orders.models import FailureReason, Order, OrderStatus
from orders.services import ExpirySweep, order_complete, order_expire_overdue, order_fail, order_place
from orders.worker_pool import run_in_pool
from payments import gateway
from payments.errors import (
    PaymentAlreadyCaptured,
    PaymentAlreadyRefunded,
    PaymentDeclined,
    PaymentError,
    PaymentGatewayError,
    PaymentNotApproved,
    PaymentNotFound,
    PaymentNotRefundable,
    PaymentNotStarted,
    PaymentProviderNotFound,
    PaymentRejected,
    WebhookRejected,
)
from payments.models import Payment, PaymentStatus, WebhookEvent

logger = logging.getLogger(__name__)

# How many expired orders one placement settles with PayPal before it answers out of stock.
PLACEMENT_SETTLE_LIMIT = 10
REFUND_NOTE = "Your order could not be completed, so your payment was refunded."


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


def _lock_unless_busy(order_id: int) -> Order | None:
    """The order, locked; ``None`` when its row is locked elsewhere (a capture in flight)."""
    try:
        return order_lock(order_id=order_id, skip_locked=True)
    except Order.DoesNotExist as error:
        raise PaymentNotFound("No such order.") from error


def _order(order_id: int) -> Order:
    return Order.objects.select_related("payment", "user").get(pk=order_id)


def _site_url(url_name: str) -> str:
    return f"{settings.SITE_URL.rstrip('/')}{reverse(url_name)}"


def _grace_over(order: Order, now: datetime) -> bool:
    return now >= order.reserved_until + timedelta(seconds=settings.PAYPAL_SETTLE_GRACE_SECONDS)


# --- Place ---------------------------------------------------------------------------------------------


def checkout_place(*, user, lines, idempotency_key: str | None = None, language: str = "en") -> Order:
    """Place an order on the order pool: the placement of the API and of the checkout page.

    When only expired holds of orders that have a PayPal order keep the stock short, those orders
    are settled with PayPal first (outside any lock: captured if approved, completed if paid,
    failed otherwise), then the order is placed once more. Raises ``OutOfStock`` if it is still
    short, and whatever ``order_place`` raises.
    """

    def place() -> Order:
        return run_in_pool(
            order_place, user=user, lines=lines, idempotency_key=idempotency_key, language=language
        )

    try:
        return place()
    except OutOfStock as short:
        if not _settle_expired_holders(short.expired_with_provider):
            raise
    return place()


def _settle_expired_holders(order_ids) -> bool:
    """Settle these expired orders with PayPal; whether any of them was settled (let go of its hold)."""
    settled = False
    for order_id in order_ids[:PLACEMENT_SETTLE_LIMIT]:
        try:
            order = payment_settle_expired(order_id=order_id)
        except PaymentGatewayError as error:
            logger.warning("placement could not settle expired order %s: %s", order_id, error.message)
            break  # PayPal is not answering: the shopper should not wait for each of them
        except PaymentError as error:
            logger.warning("placement could not settle expired order %s: %s", order_id, error.message)
            continue
        settled = settled or (order is not None and order.status != OrderStatus.PENDING)
    return settled


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
    sweep. Repeating it gives one capture and one outcome. A final refusal fails the order at once
    (``payment_declined``). Raises ``PaymentGatewayError`` when PayPal cannot be reached or asks to
    try again (the order stays PENDING, settled later by a webhook or by the expiry sweep) and
    ``PaymentNotApproved`` when the payer has not approved the PayPal order yet.
    """
    with transaction.atomic():
        order = _lock(order_id)
        payment = order.payment
        if order.status == OrderStatus.PENDING:
            if not payment.provider_order_id:
                raise PaymentNotStarted()
            _capture_locked(order)
            return _order(order_id)
    if order.status == OrderStatus.FAILED and payment.needs_reconciliation:
        # PayPal may hold money for this failed order (a capture that landed after it failed and
        # could not be refunded yet): ask, and refund it.
        payment_reconcile(order_id=order_id)
    return _order(order_id)


def _refusal_reason(error: PaymentError) -> FailureReason:
    if isinstance(error, PaymentProviderNotFound):
        return FailureReason.RESERVATION_EXPIRED  # PayPal let the order expire: nothing can be paid
    return FailureReason.PAYMENT_DECLINED


def _capture_locked(order: Order) -> None:
    """Capture at PayPal and settle; the caller holds the order's row lock in its transaction."""
    payment = order.payment
    try:
        paypal_order = gateway.paypal_order_capture(
            provider_order_id=payment.provider_order_id, transaction_id=payment.transaction_id
        )
    except PaymentAlreadyCaptured:
        # Captured by an earlier call whose answer we lost (another request id would say so too).
        paypal_order = gateway.paypal_order_get(provider_order_id=payment.provider_order_id)
    except PaymentError as error:
        if not error.final:
            raise
        logger.warning("order %s: PayPal refused the capture for good: %s", order.pk, error.issue)
        order_fail(
            order_id=order.pk,
            reason=_refusal_reason(error),
            provider_response=_audit("capture", **error.audit()),
            # A decline took nothing; after a refusal we did not foresee, the sweep asks once more.
            nothing_captured=isinstance(error, PaymentDeclined),
        )
        return
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
        _complete_locked(order, capture, entry)
        return
    if paypal_order.declined_capture is not None:
        order_fail(
            order_id=order.pk,
            reason=FailureReason.PAYMENT_DECLINED,
            provider_response=entry,
            nothing_captured=True,
        )
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


def _capture_matches(payment: Payment, capture: gateway.PayPalCapture) -> bool:
    return capture.currency == payment.currency and capture.amount == payment.amount


def _complete_locked(order: Order, capture: gateway.PayPalCapture, entry: dict) -> None:
    """PayPal completed ``capture`` for this order (whose row lock the caller holds): the order is
    paid, unless the capture's amount or currency is not the payment's. On an order that already
    failed the capture is recorded and flagged: the caller refunds it."""
    if order.status == OrderStatus.PENDING and not _capture_matches(order.payment, capture):
        _fail_amount_mismatch(order, capture, entry)
    else:
        order_complete(order_id=order.pk, capture_id=capture.id, provider_response=entry)
    order.refresh_from_db()


def _fail_amount_mismatch(order: Order, capture: gateway.PayPalCapture, entry: dict) -> None:
    """Refund a capture that is not for the payment's amount and currency, then fail the order."""
    payment = order.payment
    logger.error(
        "order %s: PayPal captured %s %s (capture %s) for a payment of %s %s; refunding it",
        order.pk,
        capture.amount,
        capture.currency,
        capture.id,
        payment.amount,
        payment.currency,
    )
    _payment_note(payment, entry, capture_id=capture.id)
    try:
        _refund_capture(payment, capture.id)
    except PaymentError as error:
        # The order fails anyway; its payment stays flagged, and the sweep refunds it later.
        logger.error("order %s: the refund of capture %s failed: %s", order.pk, capture.id, error.message)
        _payment_note(payment, _audit("refund", **error.audit()))
    order_fail(order_id=order.pk, reason=FailureReason.AMOUNT_MISMATCH)


# --- Refunds -------------------------------------------------------------------------------------------


def _refund_capture(payment: Payment, capture_id: str, *, note: str = REFUND_NOTE) -> None:
    """Refund what is left of a capture at PayPal and record it (the payment becomes REFUNDED);
    the caller holds the order's row lock. Raises ``PaymentError`` when PayPal does not refund."""
    try:
        refund = gateway.paypal_capture_refund(
            capture_id=capture_id, transaction_id=payment.transaction_id, note=note
        )
    except PaymentAlreadyRefunded as error:
        # Refunded already (from PayPal's dashboard, say): record what PayPal says was given back.
        paypal_order = gateway.paypal_order_get(provider_order_id=payment.provider_order_id)
        _payment_sync_refunds(payment, paypal_order, _audit("refund", **error.audit()))
        return
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
        refunded_amount=payment.refunded_amount + (refund.amount or 0),
        needs_reconciliation=False,
    )


def _payment_sync_refunds(payment: Payment, paypal_order: gateway.PayPalOrder, entry: dict) -> None:
    """Record what PayPal says was refunded of the order's capture: the amount so far, and REFUNDED
    once the capture is refunded in full. The caller holds the order's row lock."""
    fields = {"refunded_amount": max(payment.refunded_amount, paypal_order.refunded_amount)}
    capture = paypal_order.completed_capture
    if capture is not None and capture.is_fully_refunded:
        refunds = [refund.id for refund in paypal_order.refunds if refund.status == "COMPLETED"]
        fields.update(
            status=PaymentStatus.REFUNDED,
            refund_id=refunds[-1] if refunds else payment.refund_id,
            capture_id=capture.id,
            needs_reconciliation=False,
        )
    _payment_note(payment, entry, **fields)


def _refund_kept_locked(order: Order, capture_id: str) -> None:
    """Refund a capture that landed on an order that had already FAILED (the caller holds its row
    lock): the payment becomes REFUNDED and the shopper is told. Raises ``PaymentGatewayError`` if
    PayPal cannot be reached: the payment stays flagged, and the sweep (or the caller: a webhook
    PayPal delivers again, a return) comes back to it."""
    payment = order.payment
    if order.status != OrderStatus.FAILED or payment.status == PaymentStatus.REFUNDED:
        return
    _refund_capture(payment, capture_id)
    if payment.status == PaymentStatus.REFUNDED:
        outbox_record_order_outcome(order=order)
        logger.warning("order %s had failed when capture %s landed: refunded", order.pk, capture_id)


def _refund_late_capture(*, order_id: int, capture_id: str) -> None:
    with transaction.atomic():
        _refund_kept_locked(_lock(order_id), capture_id)


# --- Cancel, expire, reconcile, refund -----------------------------------------------------------------


def payment_cancel(*, order_id: int) -> Order:
    """The payer came back through the cancel URL: the order fails (``payment_cancelled``) and its
    stock returns. A no-op on an order that is already final (e.g. paid meanwhile)."""
    return order_fail(
        order_id=order_id, reason=FailureReason.PAYMENT_CANCELLED, provider_response=_audit("cancel_url")
    )


def payment_settle_expired(*, order_id: int, now: datetime | None = None) -> Order | None:
    """Settle a PENDING order whose hold expired and that has a PayPal order: for the expiry sweep
    and for placement.

    Returns ``None`` when the order's row is locked (a capture is in flight: it settles the order).
    PayPal is asked first, because the payer may have approved or paid meanwhile:

    - APPROVED: capture and complete (exactly as the return URL would); a final refusal fails it;
    - COMPLETED: complete on a COMPLETED capture, fail on a declined one, wait on a PENDING one;
    - anything else (CREATED, PAYER_ACTION_REQUIRED, VOIDED), or PayPal refuses for good (it no
      longer knows the order, say): fail with ``reservation_expired``.

    Anything that leaves the order unsettled (PayPal unreachable or failing, a capture held for
    review) raises ``PaymentError`` or leaves it PENDING, and the next sweep asks again, because
    PayPal may hold a capture we have not heard of. Past ``PAYPAL_SETTLE_GRACE_SECONDS`` after its
    hold the order is failed whatever PayPal answers, so that nothing keeps stock off sale for ever;
    its payment is flagged, and a capture that surfaces later is refunded.
    """
    now = now or timezone.now()
    with transaction.atomic():
        order = _lock_unless_busy(order_id)
        if order is None:
            return None
        if order.status != OrderStatus.PENDING or order.reserved_until > now:
            return order
        if not order.payment.provider_order_id:
            order_fail(order_id=order.pk, reason=FailureReason.RESERVATION_EXPIRED)
            return _order(order_id)
        try:
            _settle_expired_locked(order)
        except PaymentError as error:
            if not _grace_over(order, now):
                raise
            _fail_past_grace(order, _audit("settle", **error.audit()))
        else:
            if order.status == OrderStatus.PENDING and _grace_over(order, now):
                _fail_past_grace(order, _audit("settle", note="the capture is still held for review"))
    return _order(order_id)


def _settle_expired_locked(order: Order) -> None:
    payment = order.payment
    try:
        paypal_order = gateway.paypal_order_get(provider_order_id=payment.provider_order_id)
    except PaymentError as error:
        if not error.final:
            raise
        # PayPal does not know the order any more, or will never show it: nothing can be captured.
        # (Flagged all the same: the sweep's next look costs one call.)
        order_fail(
            order_id=order.pk,
            reason=FailureReason.RESERVATION_EXPIRED,
            provider_response=_audit("get", **error.audit()),
        )
        order.refresh_from_db()
        return
    if paypal_order.status == "APPROVED":
        try:
            _capture_locked(order)
        except PaymentNotApproved as error:  # the approval lapsed at PayPal meanwhile
            order_fail(
                order_id=order.pk,
                reason=FailureReason.RESERVATION_EXPIRED,
                provider_response=_audit("capture", **error.audit()),
                nothing_captured=True,
            )
            order.refresh_from_db()
    elif paypal_order.status == "COMPLETED":
        _settle_locked(order, paypal_order, operation="get")
    else:
        order_fail(
            order_id=order.pk,
            reason=FailureReason.RESERVATION_EXPIRED,
            provider_response=_audit("get", response=paypal_order.raw),
            nothing_captured=True,
        )
        order.refresh_from_db()


def _fail_past_grace(order: Order, entry: dict) -> None:
    logger.warning(
        "order %s: PayPal did not settle it within %ss after its hold; failing it (its payment is "
        "checked again, and a capture that surfaces later is refunded)",
        order.pk,
        settings.PAYPAL_SETTLE_GRACE_SECONDS,
    )
    order_fail(order_id=order.pk, reason=FailureReason.RESERVATION_EXPIRED, provider_response=entry)
    order.refresh_from_db()


def payment_reconcile(*, order_id: int) -> Order | None:
    """Ask PayPal about a FAILED order whose payment is flagged ``needs_reconciliation``: refund a
    completed capture it holds, and clear the flag once PayPal holds nothing for it (a capture held
    for review keeps the flag until PayPal decides).

    ``None`` when the order's row is locked elsewhere. Raises ``PaymentError`` when PayPal cannot
    be asked or does not refund: the flag stays, and the next sweep asks again (only PayPal saying
    it does not know the order clears it).
    """
    with transaction.atomic():
        order = _lock_unless_busy(order_id)
        if order is None:
            return None
        payment = order.payment
        if order.status != OrderStatus.FAILED or not payment.needs_reconciliation:
            return order
        try:
            paypal_order = gateway.paypal_order_get(provider_order_id=payment.provider_order_id)
        except PaymentProviderNotFound as error:
            # PayPal does not know the order: it expired there uncaptured, nothing was taken.
            _payment_note(payment, _audit("reconcile", **error.audit()), needs_reconciliation=False)
            return _order(order_id)
        except PaymentError as error:
            if error.final:  # PayPal refuses to show an order of ours: a human has to look
                logger.error("order %s: PayPal refuses to show its order: %s", order.pk, error.message)
            raise  # the flag stays: PayPal may hold money, and the next sweep asks again
        entry = _audit("reconcile", response=paypal_order.raw)
        capture = paypal_order.completed_capture
        if capture is None:
            pending = paypal_order.pending_capture
            if pending is not None:
                _payment_note(payment, entry, capture_id=pending.id)  # wait for PayPal to decide
            else:
                _payment_note(payment, entry, needs_reconciliation=False)
        elif capture.is_fully_refunded:
            _payment_sync_refunds(payment, paypal_order, entry)
            outbox_record_order_outcome(order=order)
        else:
            _payment_note(payment, entry, capture_id=capture.id)
            _refund_kept_locked(order, capture.id)
    return _order(order_id)


def payment_expire_overdue(*, now: datetime | None = None, batch_size: int | None = None) -> ExpirySweep:
    """The expiry sweep: the beat task and ``manage.py release_expired_reservations``.

    1. Orders without a PayPal order whose hold expired are failed set-based (``order_expire_overdue``).
    2. Those with one are settled with PayPal one by one (``payment_settle_expired``); past the grace
       period they are failed whatever PayPal answers.
    3. FAILED orders whose PayPal order may hold money are checked again (``payment_reconcile``).

    An error on one order is logged and leaves it for the next sweep.
    """
    now = now or timezone.now()
    batch_size = batch_size or settings.RESERVATION_SWEEP_BATCH_SIZE
    sweep = order_expire_overdue(now=now, batch_size=batch_size)
    for order_id in sweep.with_provider:
        if _sweep_one(payment_settle_expired, order_id=order_id, now=now):
            sweep.settled_with_provider.append(order_id)
    flagged = (
        Payment.objects.filter(needs_reconciliation=True, order__status=OrderStatus.FAILED)
        .order_by("order_id")
        .values_list("order_id", flat=True)[:batch_size]
    )
    for order_id in flagged:
        try:
            if _sweep_one(payment_reconcile, order_id=order_id, reraise=PaymentGatewayError):
                sweep.reconciled.append(order_id)
        except PaymentGatewayError:
            break  # PayPal is not answering: the next sweep asks again
    if sweep.settled_with_provider or sweep.reconciled:
        logger.info(
            "expiry sweep: settled %d expired orders with PayPal, checked %d failed ones again",
            len(sweep.settled_with_provider),
            len(sweep.reconciled),
        )
    return sweep


def _sweep_one(service, *, order_id: int, reraise=(), **kwargs) -> bool:
    """Run one service of the sweep on one order; whether it acted (the order was not locked)."""
    try:
        return service(order_id=order_id, **kwargs) is not None
    except reraise:
        raise
    except PaymentError as error:
        logger.warning("expiry sweep: order %s left for the next sweep: %s", order_id, error.message)
    except Exception:
        logger.exception("expiry sweep: order %s left for the next sweep", order_id)
    return False


def payment_refund(*, order_id: int) -> Payment:
    """Staff refund what is left of the captured payment of a paid order through PayPal; the payment
    becomes REFUNDED (the order stays SUCCESS: the goods were sold). Refunding again is a no-op."""
    with transaction.atomic():
        order = _lock(order_id)
        payment = order.payment
        if payment.status == PaymentStatus.REFUNDED:
            return payment
        if payment.status != PaymentStatus.SUCCESS or not payment.capture_id:
            raise PaymentNotRefundable()
        _refund_capture(payment, payment.capture_id, note="Refunded by the shop.")
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
        outbox_record_order_outcome(order=order)
