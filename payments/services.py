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

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from orders.lock_objects import order_lock
from orders.models import FailureReason, Order, OrderStatus
from orders.outcomes import order_outcome_record
from orders.selectors import order_lines_load
from orders.services import order_complete, order_fail
from payments import gateway
from payments.errors import (
    PaymentAlreadyCaptured,
    PaymentAlreadyRefunded,
    PaymentDeclined,
    PaymentError,
    PaymentGatewayError,
    PaymentNotFound,
    PaymentNotRefundable,
    PaymentNotStarted,
    PaymentProviderNotFound,
    PaymentRejected,
)
from payments.models import Payment, PaymentStatus

logger = logging.getLogger(__name__)

# How many expired orders one placement settles with PayPal before it answers out of stock.
REFUND_NOTE = "Your order could not be completed, so your payment was refunded."


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


# --- Start ---------------------------------------------------------------------------------------------


def payment_start(*, order_id: int, order: Order | None = None) -> Payment:
    """Create the PayPal order of a freshly placed PENDING order; answers its payment, with
    ``approval_url`` set. Called again it returns the same payment (and PayPal the same order).

    ``order``: the order (with its payment) as the caller holds it, e.g. as placement answered it,
    so that it is not read again; its payment then becomes the one answered.

    Amount and items come from the order's own lines and total. If PayPal cannot be reached (or
    refuses the order), the order fails with ``gateway_error``, its stock returns, and
    ``PaymentGatewayError`` is raised.
    """
    if order is None:
        try:
            order = Order.objects.select_related("payment").get(pk=order_id)
        except Order.DoesNotExist as error:
            raise PaymentNotFound("No such order.") from error
    payment = order.payment
    if payment.provider_order_id or order.status != OrderStatus.PENDING:
        return payment

    order_lines_load(order=order)
    lines = [
        gateway.PurchaseLine(
            name=line.product_name, sku=line.product.sku, quantity=line.quantity, unit_price=line.unit_price
        )
        for line in order.lines.all()
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
    order.payment = _payment_record_created(payment=order.payment, created=created)
    return order.payment


def _payment_record_created(*, payment: Payment, created: gateway.PayPalOrder) -> Payment:
    """Record the PayPal order on ``payment``, as the caller read it (it has none yet).

    Nothing writes a payment without a PayPal order but a failure of its order, so it is usually still
    what the caller read: then one UPDATE, conditional on exactly that, records it (no lock, no
    transaction of its own). If anything changed it meanwhile, it is recorded as every other payment
    write is, under the order's row lock, on the payment as it is now.
    """
    entry = _audit("create", response=created.raw)
    if payment.status == PaymentStatus.PENDING:
        fields = {
            "provider_order_id": created.id,
            "approval_url": created.approval_url,
            "provider_responses": [*payment.provider_responses, entry],
            "updated_at": timezone.now(),
        }
        unchanged = Payment.objects.filter(
            pk=payment.pk,
            provider_order_id__isnull=True,
            status=PaymentStatus.PENDING,
            provider_responses=payment.provider_responses,
        )
        if unchanged.update(**fields):
            for name, value in fields.items():
                setattr(payment, name, value)
            return payment
    return _payment_record_created_locked(order_id=payment.order_id, entry=entry, created=created)


@transaction.atomic
def _payment_record_created_locked(*, order_id: int, entry: dict, created: gateway.PayPalOrder) -> Payment:
    order = _lock(order_id)
    payment = order.payment
    if not payment.provider_order_id:
        _payment_note(payment, entry, provider_order_id=created.id, approval_url=created.approval_url)
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
        order_outcome_record(order=order)
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
            order_outcome_record(order=order)
        else:
            _payment_note(payment, entry, capture_id=capture.id)
            _refund_kept_locked(order, capture.id)
    return _order(order_id)


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
