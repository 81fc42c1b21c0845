"""Orders whose hold expired and that have a PayPal order, and failed orders whose PayPal order may hold
money: settled with PayPal by the expiry sweep (the beat task and ``release_expired_reservations``),
and by placement when such an order keeps a product short.

PayPal is asked first, because the payer may have approved or paid meanwhile: an approved order is
captured, a paid one completed, anything else failed; past ``reserved_until +
PAYPAL_SETTLE_GRACE_SECONDS`` the order fails whatever PayPal answers. Orders without a PayPal order
expire set-based in ``orders.services.order_expire_overdue``, which the sweep runs first.
"""

from __future__ import annotations

import contextvars
import logging
import queue
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from orders.models import FailureReason, Order, OrderStatus
from orders.services import ExpirySweep, order_expire_overdue, order_fail
from payments import gateway
from payments.errors import (
    PaymentError,
    PaymentGatewayError,
    PaymentNotApproved,
)
from payments.models import Payment
from payments.services import (
    _audit,
    _capture_locked,
    _grace_over,
    _lock_unless_busy,
    _order,
    _settle_locked,
    payment_reconcile,
)

logger = logging.getLogger(__name__)


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


def payment_expire_overdue(
    *, now: datetime | None = None, batch_size: int | None = None, concurrency: int | None = None
) -> ExpirySweep:
    """The expiry sweep: the beat task and ``manage.py release_expired_reservations``.

    1. Orders without a PayPal order whose hold expired are failed set-based (``order_expire_overdue``).
    2. Those with one are settled with PayPal (``payment_settle_expired``), ``concurrency`` orders at a
       time (``PAYPAL_SETTLE_CONCURRENCY``), each under its own order lock; past the grace period they
       are failed whatever PayPal answers.
    3. FAILED orders whose PayPal order may hold money are checked again (``payment_reconcile``).

    An error on one order is logged and leaves it for the next sweep; the others go on.
    """
    now = now or timezone.now()
    batch_size = batch_size or settings.RESERVATION_SWEEP_BATCH_SIZE
    concurrency = concurrency or settings.PAYPAL_SETTLE_CONCURRENCY
    if concurrency < 1:
        raise ValueError(f"concurrency must be 1 or more, not {concurrency}")
    sweep = order_expire_overdue(now=now, batch_size=batch_size)
    sweep.settled_with_provider.extend(
        _settle_expired_orders(sweep.with_provider, now=now, concurrency=concurrency)
    )
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


def _settle_expired_orders(order_ids: list[int], *, now: datetime, concurrency: int) -> list[int]:
    """``payment_settle_expired`` on each of ``order_ids``, up to ``concurrency`` at once; answers
    those settled (in ``order_ids``' order).

    Each PayPal answer takes a round trip, and each order is settled under its own row lock in a
    transaction of its own, so a few threads, each with its own database connection, settle as many
    orders at once. Inside a caller's transaction (whose rows other connections cannot see yet) they
    are settled here, one by one.
    """
    threads = min(concurrency, len(order_ids))
    if threads <= 1 or transaction.get_connection().in_atomic_block:
        return [
            order_id
            for order_id in order_ids
            if _sweep_one(payment_settle_expired, order_id=order_id, now=now)
        ]
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for order_id in order_ids:
        todo.put(order_id)
    settled: set[int] = set()

    def settle_until_done() -> None:
        try:
            while True:
                try:
                    order_id = todo.get_nowait()
                except queue.Empty:
                    return
                if _sweep_one(payment_settle_expired, order_id=order_id, now=now):
                    settled.add(order_id)  # (set.add is atomic under the GIL)
        finally:
            connection.close()  # this thread's own connection: none is left open behind the sweep

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="paypal-settle") as pool:
        # Each thread runs in a copy of the caller's context: its log lines carry the sweep's request id.
        futures = [pool.submit(contextvars.copy_context().run, settle_until_done) for _ in range(threads)]
    for future in futures:
        future.result()  # _sweep_one keeps every error of an order; anything else is a bug: raise it
    return [order_id for order_id in order_ids if order_id in settled]


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
