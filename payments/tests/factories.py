"""Orders as the checkout makes them (through ``order_place``), and helpers to move them in time."""

from datetime import timedelta

from django.utils import timezone

from inventory.models import ReservedStock, Stock
from inventory.tests.factories import ProductFactory
from orders.models import Order
from orders.services import order_place
from orders.tests.factories import UserFactory
from payments.services import payment_start

__all__ = ["ProductFactory", "UserFactory", "available", "expire", "place_order", "start_order"]


def place_order(*, user, lines) -> Order:
    """``lines``: [(product, quantity)]: a PENDING order holding its stock, with a PENDING payment."""
    return order_place(
        user=user, lines=[{"product": product.pk, "quantity": quantity} for product, quantity in lines]
    )


def start_order(*, user, lines) -> Order:
    """A placed order whose PayPal order exists (the shopper is about to be sent to PayPal)."""
    order = place_order(user=user, lines=lines)
    payment_start(order_id=order.pk)
    return Order.objects.select_related("payment").get(pk=order.pk)


def expire(order: Order, *, seconds_ago: int = 1) -> None:
    """Make the order's hold (the order's and its stock holds') expired ``seconds_ago`` seconds ago."""
    past = timezone.now() - timedelta(seconds=seconds_ago)
    Order.objects.filter(pk=order.pk).update(reserved_until=past)
    ReservedStock.objects.filter(order_id=order.pk).update(expires_at=past)


def available(product) -> int:
    return Stock.objects.get(product=product).available
