"""The checkout: place an order on the order pool, then send the shopper to PayPal to pay it. The one
orchestration of the pages' "Place order" and of ``POST /api/orders/``.

Placement runs on the order pool (``orders.worker_pool``). When only expired holds of orders that have
a PayPal order keep the stock short, those orders are settled with PayPal first (outside any lock:
captured if approved, completed if paid, failed otherwise), then the order is placed once more. The
PayPal order is created once per order (``checkout_payment_link`` is the one guard), after placement
committed and outside any lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.errors import ShopError
from orders.errors import OutOfStock
from orders.models import Order, OrderStatus
from orders.selectors import order_lines_load
from orders.services import order_place
from orders.worker_pool import run_in_pool
from payments.errors import PaymentError, PaymentGatewayError
from payments.expiry import payment_settle_expired
from payments.services import payment_start

logger = logging.getLogger(__name__)

# At most this many expired orders of other shoppers are settled with PayPal during one placement.
PLACEMENT_SETTLE_LIMIT = 10


@dataclass(frozen=True)
class Checkout:
    order: Order  # as placed, with its payment and lines: the answer needs no more reading
    approval_url: str | None  # where the shopper pays at PayPal; None once the order is not pending


def checkout_order(*, user, lines, idempotency_key: str | None = None, language: str = "en") -> Checkout:
    """Place the order (the same key again gives the same order) and create its PayPal order.

    Raises what placement raises (``OutOfStock``, ``Busy``, ...) and ``PaymentGatewayError`` when
    PayPal could not be reached: the order has then failed (``gateway_error``) and its stock is back.
    """
    order = checkout_place(user=user, lines=lines, idempotency_key=idempotency_key, language=language)
    order_lines_load(order=order)  # once, for the PayPal order and for the caller's answer
    return Checkout(order=order, approval_url=checkout_payment_link(order=order))


def checkout_payment_link(*, order: Order) -> str | None:
    """Where the shopper approves the payment of ``order`` at PayPal, the PayPal order created on first
    use; ``None`` when the order is no longer pending."""
    if order.status != OrderStatus.PENDING:
        return None
    payment = order.payment
    if not (payment.provider_order_id and payment.approval_url):
        payment = payment_start(order_id=order.pk, order=order)
    if not payment.approval_url:
        raise ShopError()
    return payment.approval_url


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
