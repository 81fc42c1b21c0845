from django.db.models import Prefetch, QuerySet, prefetch_related_objects

from orders.errors import OrderNotFound
from orders.models import Order, OrderLine


def order_list_for_user(*, user) -> QuerySet[Order]:
    """The user's own orders, newest first, with what the API and pages show."""
    return (
        Order.objects.filter(user=user)
        .select_related("payment")
        .prefetch_related(Prefetch("lines", queryset=OrderLine.objects.order_by("id")))
    )


def order_get_for_user(*, user, order_id) -> Order:
    """One of the user's own orders; anybody else's is reported as not existing."""
    try:
        return order_list_for_user(user=user).get(pk=order_id)
    except (Order.DoesNotExist, ValueError, TypeError) as error:
        raise OrderNotFound() from error


def order_get_for_idempotency_key(*, user, idempotency_key: str) -> Order | None:
    """The user's order placed with this key (a checkout token on the pages), if any."""
    if not idempotency_key:
        return None
    return order_list_for_user(user=user).filter(idempotency_key=idempotency_key).first()


def order_lines_load(*, order: Order) -> None:
    """Load the lines of ``order`` (each with its product) in their order, in one query, unless they
    are loaded already: ``order.lines.all()`` then reads no more, for PayPal's order and for the API's
    answer alike."""
    prefetch_related_objects(
        [order], Prefetch("lines", queryset=OrderLine.objects.select_related("product").order_by("id"))
    )
