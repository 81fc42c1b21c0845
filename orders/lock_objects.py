"""Row locks on orders. Lock order across the checkout: the shopper's row (placement), order rows,
then stock rows."""

from datetime import datetime

from django.contrib.auth import get_user_model

from orders.models import Order, OrderStatus


def shopper_lock(*, user_id: int) -> None:
    """Lock a shopper's row for a placement, so that two placements of one shopper count each other's
    pending orders (the cap). NO KEY UPDATE: it does not stand in the way of the KEY SHARE locks that
    inserting any row referencing the user takes. Taken before any order or stock row."""
    get_user_model().objects.select_for_update(no_key=True).filter(pk=user_id).values_list("pk").first()


def order_lock(*, order_id: int, skip_locked: bool = False) -> Order | None:
    """Lock one order (with its payment); ``None`` when it is locked elsewhere and ``skip_locked``."""
    queryset = Order.objects.select_for_update(skip_locked=skip_locked, of=("self",)).select_related(
        "payment", "user"
    )
    try:
        return queryset.get(pk=order_id)
    except Order.DoesNotExist:
        if skip_locked and Order.objects.filter(pk=order_id).exists():
            return None
        raise


def orders_lock_expired(*, now: datetime, limit: int, ids=None, after: int | None = None) -> list[Order]:
    """Lock up to ``limit`` pending orders whose hold has expired, in primary-key order, skipping those
    locked elsewhere (a capture in flight holds its order's row).

    ``after``: only orders with a greater primary key (key-set paging: a sweep passes the last id of
    its previous batch, so each batch's query stays the same size however many batches came before).
    """
    queryset = Order.objects.filter(status=OrderStatus.PENDING, reserved_until__lte=now)
    if ids is not None:
        queryset = queryset.filter(pk__in=list(ids))
    if after is not None:
        queryset = queryset.filter(pk__gt=after)
    return list(
        queryset.select_for_update(skip_locked=True, of=("self",))
        .select_related("payment")
        .order_by("pk")[:limit]
    )
