"""Writes of the checkout: place, complete, fail, cancel and expire orders.

Each public function is one transaction. Row locks are taken through the lock helpers only, and
always order rows first, then stock rows in primary-key order. Nothing here talks to the network:
PayPal calls are made by ``payments.services`` outside any stock lock, and outcome emails leave
through the outbox row written in the same transaction.
"""

import enum
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from inventory.lock_objects import stock_lock, stock_lock_available
from inventory.models import Product, ReservedStock, Stock
from inventory.reservations import (
    expired_order_ids_holding,
    held_product_ids,
    holds_consume,
    holds_create,
    holds_release,
)
from orders.errors import (
    IdempotencyConflict,
    InvalidOrder,
    OrderNotFound,
    OrderNotPending,
    OutOfStock,
    ProductQuantityExceeded,
    TooManyPendingOrders,
    UnknownProducts,
)
from orders.lock_objects import order_lock, orders_lock_expired, shopper_lock
from orders.metrics import FAILED, PLACED, SUCCEEDED, orders_count_on_commit
from orders.models import FailureReason, Order, OrderLine, OrderStatus
from orders.outcomes import order_outcome_record, order_outcomes_record
from orders.payment_port import payment_book

logger = logging.getLogger(__name__)


class CompletionResult(enum.Enum):
    COMPLETED = "completed"  # the order was pending and is now paid
    ALREADY_COMPLETED = "already_completed"  # nothing to do: it was paid before
    ORDER_FAILED = "order_failed"  # the order had already failed: the caller must refund the capture


# --- Placing -------------------------------------------------------------------------------------


def _is_whole_number(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def order_lines_normalize(*, lines) -> dict[int, int]:
    """Check the requested lines and merge duplicate products: product id to total quantity.

    Raises ``InvalidOrder`` listing every bad line.
    """
    max_quantity = settings.ORDER_MAX_QUANTITY_PER_LINE
    if not isinstance(lines, (list, tuple)) or not lines:
        raise InvalidOrder(
            "An order needs at least one line.", errors={"lines": ["This list may not be empty."]}
        )
    if len(lines) > settings.ORDER_MAX_LINES:
        raise InvalidOrder(
            f"An order can have at most {settings.ORDER_MAX_LINES} lines.",
            errors={"lines": [f"Ensure this list has at most {settings.ORDER_MAX_LINES} lines."]},
        )
    merged: dict[int, int] = {}
    errors: dict[str, dict[str, list[str]]] = {}
    for index, line in enumerate(lines):
        line_errors = {}
        product = line.get("product") if isinstance(line, dict) else None
        quantity = line.get("quantity") if isinstance(line, dict) else None
        if not _is_whole_number(product) or product < 1:
            line_errors["product"] = ["A product id (a positive whole number) is required."]
        if not _is_whole_number(quantity) or not 1 <= quantity <= max_quantity:
            line_errors["quantity"] = [f"The quantity must be a whole number from 1 to {max_quantity}."]
        if line_errors:
            errors[str(index)] = line_errors
        else:
            merged[product] = merged.get(product, 0) + quantity
    if errors:
        raise InvalidOrder("Some lines of the order are not valid.", errors={"lines": errors})
    too_many = sorted(product for product, quantity in merged.items() if quantity > max_quantity)
    if too_many:
        raise ProductQuantityExceeded(
            f"At most {max_quantity} units of one product per order.",
            errors={"lines": {"products": too_many}},
        )
    return merged


def _order_for_key(*, user, idempotency_key: str) -> Order | None:
    return Order.objects.filter(user=user, idempotency_key=idempotency_key).select_related("payment").first()


def _replay(order: Order, quantities: dict[int, int]) -> Order:
    ordered = dict(order.lines.values_list("product_id", "quantity"))
    if ordered != quantities:
        raise IdempotencyConflict()
    return order


def order_place(*, user, lines, idempotency_key: str | None = None, language: str = "en") -> Order:
    """Hold the stock of ``lines`` and create a PENDING order with its PENDING payment.

    ``lines`` is a list of ``{"product": id, "quantity": n}``. The same user with the same
    ``idempotency_key`` gets the same order back, also when two requests race. Short stock raises
    ``OutOfStock`` listing every short line, and nothing is written.
    """
    quantities = order_lines_normalize(lines=lines)
    if idempotency_key is not None:
        idempotency_key = str(idempotency_key).strip()
        if not 1 <= len(idempotency_key) <= 255:
            raise InvalidOrder(
                "The Idempotency-Key must be 1 to 255 characters.",
                errors={"idempotency_key": ["Must be 1 to 255 characters."]},
            )
        existing = _order_for_key(user=user, idempotency_key=idempotency_key)
        if existing is not None:
            return _replay(existing, quantities)
    try:
        placed = _order_place(
            user=user, quantities=quantities, idempotency_key=idempotency_key, language=language
        )
        if isinstance(placed, OutOfStock):
            raise placed  # only now: the expired holds it released are committed
    except (IntegrityError, TooManyPendingOrders, OutOfStock):
        # Ours wrote nothing, but a request with the same key may have placed the order: one that
        # committed first (IntegrityError), or one whose order took the last units or reached the cap
        # (a refusal is decided under the shopper's lock, so that request has committed by then).
        existing = idempotency_key and _order_for_key(user=user, idempotency_key=idempotency_key)
        if not existing:
            raise
        return _replay(existing, quantities)
    return placed


class _StockTaken(Exception):
    """A placement's conditional reservation found a product short that the read before it had
    found available: another placement took the units in between. Raised to roll back everything the
    attempt wrote."""


def _order_place(*, user, quantities, idempotency_key, language) -> Order | OutOfStock:
    try:
        return _order_place_attempt(
            user=user, quantities=quantities, idempotency_key=idempotency_key, language=language
        )
    except _StockTaken:
        # Nothing of the first attempt is left: decide again with the stock rows locked first.
        return _order_place_attempt(
            user=user,
            quantities=quantities,
            idempotency_key=idempotency_key,
            language=language,
            lock_first=True,
        )


@transaction.atomic
def _order_place_attempt(
    *, user, quantities, idempotency_key, language, lock_first: bool = False
) -> Order | OutOfStock:
    """One placement transaction. It locks the stock rows last: it writes the order, its lines, its
    payment and its holds, and only then reserves the units with one conditional UPDATE, right before
    COMMIT, so that a hot product's row is held for that statement and the commit only.

    When the stock read without a lock (or the reservation of a first attempt: ``lock_first``) says
    some product is short, it locks the stock rows first instead, to release expired holds that keep
    them short; still short, it answers ``OutOfStock`` (returned, not raised, so that the holds
    released stay released), having written nothing.
    """
    now = timezone.now()
    currency = settings.SHOP_CURRENCY
    _check_pending_cap(user=user, now=now)
    products = (
        Product.objects.filter(pk__in=list(quantities), is_active=True).select_related("stock").in_bulk()
    )
    unknown = sorted(set(quantities) - set(products))
    if unknown:
        raise UnknownProducts(errors={"lines": {"unknown_products": unknown}})
    wrong_currency = sorted(pk for pk, product in products.items() if product.currency != currency)
    if wrong_currency:
        raise InvalidOrder(
            f"Some products are not sold in {currency}.", errors={"lines": {"wrong_currency": wrong_currency}}
        )

    if lock_first or _short_items(quantities, {pk: _stock_of(product) for pk, product in products.items()}):
        stocks = stock_lock(product_ids=quantities)
        short = _short_items(quantities, stocks)
        expired_with_provider: list[int] = []
        if short:
            released, expired_with_provider = _release_expired_holds(
                product_ids=[item["product"] for item in short], locked=stocks, now=now
            )
            if released:
                stocks = stock_lock(product_ids=quantities)  # already ours; read the counters again
                short = _short_items(quantities, stocks)
        if short:
            return OutOfStock(items=short, expired_with_provider=expired_with_provider)

    total = sum((products[pk].price * quantity for pk, quantity in quantities.items()), Decimal("0.00"))
    order = Order.objects.create(
        user=user,
        total=total,
        currency=currency,
        idempotency_key=idempotency_key,
        reserved_until=now + timedelta(seconds=settings.RESERVATION_TTL_SECONDS),
        language=language,
    )
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            product_id=pk,
            product_name=products[pk].name,
            quantity=quantity,
            unit_price=products[pk].price,
        )
        for pk, quantity in sorted(quantities.items())
    )
    payment_book().opened(order=order)
    orders_count_on_commit(outcome=PLACED)  # runs only once committed
    # Last: from here to COMMIT the stock rows are locked.
    if not holds_create(order=order, quantities=quantities, expires_at=order.reserved_until):
        raise _StockTaken()
    return order


def _stock_of(product: Product) -> Stock | None:
    try:
        return product.stock
    except Stock.DoesNotExist:
        return None


def _check_pending_cap(*, user, now: datetime) -> None:
    """At most ``ORDER_MAX_PENDING_PER_USER`` unpaid orders with a live hold per shopper, so that one
    account cannot keep a product line off sale again and again. Counted under the shopper's lock."""
    shopper_lock(user_id=user.pk)
    holding = list(
        Order.objects.filter(user=user, status=OrderStatus.PENDING, reserved_until__gt=now)
        .order_by("reserved_until")
        .values_list("reserved_until", flat=True)
    )
    if len(holding) >= settings.ORDER_MAX_PENDING_PER_USER:
        first_free = holding[len(holding) - settings.ORDER_MAX_PENDING_PER_USER]
        raise TooManyPendingOrders(
            count=len(holding), retry_after=max(1, math.ceil((first_free - now).total_seconds()))
        )


def _short_items(quantities: dict[int, int], stocks: dict[int, Stock]) -> list[dict]:
    short = []
    for product_id, requested in sorted(quantities.items()):
        stock = stocks.get(product_id)
        available = stock.available if stock else 0
        if requested > available:
            short.append({"product": product_id, "requested": requested, "available": available})
    return short


def _release_expired_holds(*, product_ids, locked: dict[int, Stock], now: datetime) -> tuple[bool, list[int]]:
    """Fail the pending orders without a PayPal order whose expired holds keep these products short,
    so that no shopper is refused stock that only expired holds keep, even while the beat sweeper
    is down. Answers whether any was released, and the expired orders WITH a PayPal order that hold
    these products: those may have been paid meanwhile, so only the payments code, after asking
    PayPal, may fail them (``payments.services.checkout_place`` does, outside any lock).

    The caller already holds stock locks, so nothing here waits: orders locked elsewhere (a capture
    in flight) and other stock rows locked elsewhere are skipped, and left to the sweeper.
    """
    candidates = expired_order_ids_holding(product_ids=product_ids, now=now)
    if not candidates:
        return False, []
    with_provider = sorted(
        Order.objects.filter(pk__in=candidates, payment__provider_order_id__isnull=False).values_list(
            "pk", flat=True
        )
    )
    plain = candidates.difference(with_provider)
    orders = orders_lock_expired(now=now, limit=len(plain), ids=plain) if plain else []
    # (Re-checked under the lock: a PayPal order may have been recorded since the look-up.)
    orders = [order for order in orders if not order.payment.provider_order_id]
    if not orders:
        return False, with_provider
    products_by_order: dict[int, set[int]] = {}
    for order_id, product_id in ReservedStock.objects.filter(order__in=orders).values_list(
        "order_id", "product_id"
    ):
        products_by_order.setdefault(order_id, set()).add(product_id)
    missing = set().union(*products_by_order.values()) - set(locked)
    blocked = missing - set(stock_lock_available(product_ids=missing))
    releasable = [order for order in orders if not products_by_order.get(order.pk, set()) & blocked]
    if not releasable:
        return False, with_provider
    _orders_expire(releasable, now=now)
    logger.info("placement released the expired holds of orders %s", [order.pk for order in releasable])
    return True, with_provider


# --- Settling ------------------------------------------------------------------------------------


def _lock_for_update(order_id: int) -> Order:
    try:
        return order_lock(order_id=order_id)
    except Order.DoesNotExist as error:
        raise OrderNotFound() from error


@transaction.atomic
def order_complete(
    *, order_id: int, capture_id: str = "", provider_response: dict | None = None
) -> CompletionResult:
    """The payment was captured: the order and its payment become SUCCESS and its held stock leaves
    the shop for good. A repeated call is a no-op; on an order that already failed it says so, and
    the caller refunds the capture."""
    order = _lock_for_update(order_id)
    if order.status == OrderStatus.SUCCESS:
        return CompletionResult.ALREADY_COMPLETED
    if order.status == OrderStatus.FAILED:
        payment_book().captured_late(order=order, capture_id=capture_id, provider_response=provider_response)
        return CompletionResult.ORDER_FAILED

    stock_lock(product_ids=held_product_ids(order_ids=[order.pk]))
    holds_consume(order_id=order.pk)
    order.status = OrderStatus.SUCCESS
    order.completed_at = timezone.now()
    order.save(update_fields=["status", "completed_at", "updated_at"])
    payment_book().captured(order=order, capture_id=capture_id, provider_response=provider_response)
    order_outcome_record(order=order)
    orders_count_on_commit(outcome=SUCCEEDED)
    return CompletionResult.COMPLETED


def _fail_locked(
    order: Order, *, reason: str, provider_response: dict | None = None, nothing_captured: bool = False
) -> Order:
    stock_lock(product_ids=held_product_ids(order_ids=[order.pk]))
    holds_release(order_ids=[order.pk])
    order.status = OrderStatus.FAILED
    order.failure_reason = FailureReason(reason)
    order.completed_at = timezone.now()
    order.save(update_fields=["status", "failure_reason", "completed_at", "updated_at"])
    payment_book().failed(order=order, provider_response=provider_response, nothing_captured=nothing_captured)
    order_outcome_record(order=order)
    orders_count_on_commit(outcome=FAILED, reason=order.failure_reason)
    return order


@transaction.atomic
def order_fail(
    *, order_id: int, reason: str, provider_response: dict | None = None, nothing_captured: bool = False
) -> Order:
    """The order will not be paid: it becomes FAILED with ``reason`` and its stock returns.
    A no-op on an order that is already final.

    ``nothing_captured``: the caller has PayPal's word that no money was taken for this order;
    otherwise a payment with a PayPal order is left for the sweep to check with PayPal.
    """
    FailureReason(reason)  # an unknown reason is a programming error: fail before touching anything
    order = _lock_for_update(order_id)
    if order.status != OrderStatus.PENDING:
        if provider_response is not None:
            payment_book().noted(order=order, provider_response=provider_response)
        return order
    return _fail_locked(
        order, reason=reason, provider_response=provider_response, nothing_captured=nothing_captured
    )


@transaction.atomic
def order_cancel(*, user, order_id: int) -> Order:
    """The shopper cancels their own pending order (``cancelled_by_shopper``)."""
    order = _lock_for_update(order_id)
    if order.user_id != user.pk:
        raise OrderNotFound()
    if order.status != OrderStatus.PENDING:
        raise OrderNotPending(status=order.status)
    return _fail_locked(order, reason=FailureReason.CANCELLED_BY_SHOPPER)


@transaction.atomic
def order_cancel_by_staff(*, order_id: int) -> Order:
    """Staff cancel a pending order (``cancelled_by_staff``): its stock returns and the shopper is
    told the shop cancelled it. Raises ``OrderNotPending`` on an order that is already final."""
    order = _lock_for_update(order_id)
    if order.status != OrderStatus.PENDING:
        raise OrderNotPending(status=order.status)
    return _fail_locked(order, reason=FailureReason.CANCELLED_BY_STAFF)


# --- Expiring ------------------------------------------------------------------------------------


def _orders_expire(orders: list[Order], *, now: datetime, lock_stock: bool = False) -> None:
    """Fail these locked pending orders (``reservation_expired``), set-based: a few statements
    whatever their number, one outbox insert for all their outcome events.

    The caller holds the locks of the orders, and of the stock rows they hold unless ``lock_stock``:
    then those are locked here, last, right before the holds are released, so that a placement of
    a product these orders held waits for no more than that statement and the commit.
    """
    ids = [order.pk for order in orders]
    Order.objects.filter(pk__in=ids).update(
        status=OrderStatus.FAILED,
        failure_reason=FailureReason.RESERVATION_EXPIRED,
        completed_at=now,
        updated_at=now,
    )
    payment_book().expired(order_ids=ids, now=now)
    for order in orders:
        order.status = OrderStatus.FAILED
        order.failure_reason = FailureReason.RESERVATION_EXPIRED
        order.completed_at = now
    order_outcomes_record(orders=orders)
    if lock_stock:
        stock_lock(product_ids=held_product_ids(order_ids=ids))
    holds_release(order_ids=ids)
    orders_count_on_commit(outcome=FAILED, reason=FailureReason.RESERVATION_EXPIRED, count=len(orders))


@dataclass
class ExpirySweep:
    released: list[int] = field(default_factory=list)  # failed with reservation_expired, stock back
    with_provider: list[int] = field(default_factory=list)  # expired, with a PayPal order: left to payments
    settled_with_provider: list[int] = field(default_factory=list)  # of those, settled with PayPal
    reconciled: list[int] = field(default_factory=list)  # failed orders checked again with PayPal
    batches: int = 0


@transaction.atomic
def _orders_expire_batch(*, now: datetime, limit: int, after: int | None) -> tuple[list[Order], list[int]]:
    orders = orders_lock_expired(now=now, limit=limit, after=after)
    plain = [order for order in orders if not order.payment.provider_order_id]
    if plain:
        _orders_expire(plain, now=now, lock_stock=True)
    return orders, [order.pk for order in orders if order.payment.provider_order_id]


def order_expire_overdue(*, now: datetime | None = None, batch_size: int | None = None) -> ExpirySweep:
    """Release every expired hold of an order without a PayPal order; list those with one.

    Orders are taken in primary-key order, in batches of one transaction each, with SKIP LOCKED, so
    a capture in flight (it holds its order's row) is never waited on nor undone: this sweep passes
    it by, and the next one looks again if it is still pending. Each batch starts after the last
    order of the one before (key-set paging), so every batch costs the same. An order with no PayPal
    order is failed set-based within its batch. One with a PayPal order may have been approved or
    paid meanwhile: it is only listed in ``with_provider``, for
    ``payments.expiry.payment_expire_overdue`` (the beat task) to settle with PayPal, outside any
    stock lock.
    """
    now = now or timezone.now()
    batch_size = batch_size or settings.RESERVATION_SWEEP_BATCH_SIZE
    sweep = ExpirySweep()
    last: int | None = None
    while True:
        orders, with_provider = _orders_expire_batch(now=now, limit=batch_size, after=last)
        if not orders:
            break
        sweep.batches += 1
        last = orders[-1].pk
        provider = set(with_provider)
        sweep.released.extend(order.pk for order in orders if order.pk not in provider)
        sweep.with_provider.extend(with_provider)
        if len(orders) < batch_size:
            break
    if sweep.released:
        logger.info("expiry sweep: released %d orders", len(sweep.released))
    return sweep
