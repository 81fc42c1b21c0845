"""Holds on stock (``ReservedStock``) and the stock counters they move.

Every function here works set-based: one UPDATE for all products, one INSERT or DELETE for all holds,
whatever their number. ``holds_create`` takes the stock rows' locks itself, with its conditional
UPDATE; every other function expects its caller's transaction to hold the locks of the stock rows it
touches (``inventory.lock_objects``).
"""

from collections.abc import Iterable
from datetime import datetime

from django.db import connection
from django.db.models import Case, F, IntegerField, Sum, Value, When

from inventory.lock_objects import stock_locking_subquery
from inventory.models import ReservedStock, Stock, StockMovement, StockMovementReason


def _per_product(quantities: dict[int, int]) -> Case:
    return Case(
        *[When(pk=product_id, then=Value(quantity)) for product_id, quantity in quantities.items()],
        default=Value(0),
        output_field=IntegerField(),
    )


def held_quantities(*, order_ids: Iterable[int]) -> dict[int, int]:
    """Units held per product by these orders."""
    rows = (
        ReservedStock.objects.filter(order_id__in=list(order_ids))
        .values("product_id")
        .annotate(quantity=Sum("quantity"))
        .order_by("product_id")
    )
    return {row["product_id"]: row["quantity"] for row in rows}


def held_product_ids(*, order_ids: Iterable[int]) -> set[int]:
    return set(
        ReservedStock.objects.filter(order_id__in=list(order_ids)).values_list("product_id", flat=True)
    )


def holds_create(*, order, quantities: dict[int, int], expires_at: datetime) -> bool:
    """Hold ``quantities`` (product id to units) for ``order`` until ``expires_at``: write the holds,
    then reserve every product's units with one conditional UPDATE (``on_hand - reserved >= units``),
    which locks the stock rows in primary-key order and keeps them locked until the caller's
    transaction ends. Call it last in that transaction, so that nothing else runs while the rows are
    locked.

    True when every product had the units. False when some had not: some rows may have been
    reserved and the holds are written, so the caller must roll its transaction back (raise).
    """
    ReservedStock.objects.bulk_create(
        ReservedStock(order=order, product_id=product_id, quantity=quantity, expires_at=expires_at)
        for product_id, quantity in sorted(quantities.items())
    )
    per_product = _per_product(quantities)
    reserved = Stock.objects.filter(
        pk__in=stock_locking_subquery(product_ids=quantities), on_hand__gte=F("reserved") + per_product
    ).update(reserved=F("reserved") + per_product)
    return reserved == len(quantities)


def holds_release(*, order_ids: Iterable[int]) -> dict[int, int]:
    """Give the stock held by these orders back to the available pool and delete their holds: one
    statement (the holds deleted, ``reserved`` lowered by their sum per product), whatever their number.
    Answers the units given back per product."""
    order_ids = list(order_ids)
    if not order_ids:
        return {}
    hold, stock = ReservedStock._meta, Stock._meta
    order_id, product_id, units = (hold.get_field(name).column for name in ("order", "product", "quantity"))
    reserved, stock_product = stock.get_field("reserved").column, stock.pk.column
    sql = f"""
        WITH released AS (
            DELETE FROM {hold.db_table} WHERE {order_id} = ANY(%s)
            RETURNING {product_id} AS product_id, {units} AS units
        ), per_product AS (
            SELECT product_id, sum(units) AS units FROM released GROUP BY product_id
        )
        UPDATE {stock.db_table} s SET {reserved} = s.{reserved} - p.units
        FROM per_product p WHERE s.{stock_product} = p.product_id
        RETURNING s.{stock_product}, p.units
    """  # noqa: S608 - table and column names from the models, values as parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [order_ids])
        return dict(cursor.fetchall())


def holds_consume(*, order_id: int) -> dict[int, int]:
    """The order is paid: its held units leave the shop for good (on hand and reserved both drop),
    each product's sale recorded in the stock ledger."""
    quantities = held_quantities(order_ids=[order_id])
    if quantities:
        delta = _per_product(quantities)
        Stock.objects.filter(pk__in=list(quantities)).update(
            on_hand=F("on_hand") - delta, reserved=F("reserved") - delta
        )
        on_hand_after = dict(Stock.objects.filter(pk__in=list(quantities)).values_list("pk", "on_hand"))
        StockMovement.objects.bulk_create(
            StockMovement(
                product_id=product_id,
                delta=-quantity,
                on_hand_after=on_hand_after[product_id],
                reason=StockMovementReason.SALE,
                order_id=order_id,
            )
            for product_id, quantity in sorted(quantities.items())
        )
    ReservedStock.objects.filter(order_id=order_id).delete()
    return quantities


def expired_order_ids_holding(*, product_ids: Iterable[int], now: datetime) -> set[int]:
    """Pending orders with an expired hold on any of these products."""
    return set(
        ReservedStock.objects.filter(
            product_id__in=list(product_ids), expires_at__lte=now, order__status="PENDING"
        ).values_list("order_id", flat=True)
    )
