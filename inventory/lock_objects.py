"""Every row lock on stock goes through here, always in primary-key order, so that two
transactions locking overlapping products queue up instead of deadlocking."""

from collections.abc import Iterable

from django.db.models import QuerySet

from inventory.models import Stock


def stock_lock(*, product_ids: Iterable[int]) -> dict[int, Stock]:
    """Lock the stock rows of these products (waiting for other holders); returns them by product id."""
    ids = sorted(set(product_ids))
    if not ids:
        return {}
    return {stock.pk: stock for stock in Stock.objects.select_for_update().filter(pk__in=ids).order_by("pk")}


def stock_lock_available(*, product_ids: Iterable[int]) -> dict[int, Stock]:
    """Lock those of these stock rows that nobody else holds right now, without waiting for the others.

    For a transaction that already holds stock locks and needs a few more out of order: waiting
    there could deadlock, skipping cannot.
    """
    ids = sorted(set(product_ids))
    if not ids:
        return {}
    rows = Stock.objects.select_for_update(skip_locked=True).filter(pk__in=ids).order_by("pk")
    return {stock.pk: stock for stock in rows}


def stock_locking_subquery(*, product_ids: Iterable[int]) -> QuerySet:
    """The primary keys of these stock rows, locked in primary-key order when a statement that uses
    them as a subquery runs (``filter(pk__in=...)``): for a single ``UPDATE`` that must lock several
    rows in the one order every lock helper uses. An ``UPDATE`` alone locks its rows in whatever order
    its plan visits them, and two of those could deadlock."""
    ids = sorted(set(product_ids))
    return Stock.objects.select_for_update().filter(pk__in=ids).order_by("pk").values("pk")
