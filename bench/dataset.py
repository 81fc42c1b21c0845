"""The bench's data: shoppers, products and orders, made fast and consistent.

Products are made by the shop's own service (``product_create``: stock row and opening balance in
the ledger), shoppers with one bulk insert, and orders set-based in SQL (``orders_generate``): orders,
their lines, payments with the order's ``transaction_id``, and for pending orders the holds and the
stock's ``reserved`` counters, so that the stock audit finds nothing to say about them. Every order
shape is a function of its ordinal ``g`` (1..n), so two data sets made with the same arguments on
two product sets are alike line by line: the sweep row compares their end states.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db import connection, transaction

from bench.sqlgen import column, insert_sql, table
from inventory.models import Product, ReservedStock, Stock
from inventory.services import product_create
from orders.models import Order, OrderLine
from payments.models import Payment

PRICE = Decimal("5.00")


def users_create(*, prefix: str, count: int) -> list[int]:
    """``count`` shoppers with an email address each (no usable password); their ids in order."""
    user_model = get_user_model()
    users = [
        user_model(
            username=f"{prefix}-{index}",
            email=f"{prefix}-{index}@example.com",
            password=f"{UNUSABLE_PASSWORD_PREFIX}bench",
        )
        for index in range(count)
    ]
    created = user_model.objects.bulk_create(users, batch_size=2000)
    return [user.pk for user in created]


def products_create(*, prefix: str, count: int, on_hand: int) -> list[int]:
    """``count`` products through the shop's service; product ``i`` is named "Bench product i" whatever
    the prefix, so that two product sets give the same lines and emails."""
    return [
        product_create(
            sku=f"{prefix}-{index}",
            name=f"Bench product {index}",
            slug=f"{prefix.lower()}-{index}",
            price=PRICE,
            on_hand=on_hand,
        ).pk
        for index in range(count)
    ]


def analyze() -> None:
    """Fresh planner statistics after a bulk load, as autovacuum would give a shop that grew slowly."""
    with connection.cursor() as cursor:
        for model in (Order, OrderLine, Payment, ReservedStock, Stock):
            cursor.execute(f"ANALYZE {table(model)}")


def in_threads(function: Callable, items: Sequence, *, threads: int) -> list:
    """``function(item)`` for every item on ``threads`` threads; each thread closes its database
    connection when it is done. Results in the items' order; the first error is raised."""
    lock = threading.Lock()
    results: list = [None] * len(items)
    position = iter(range(len(items)))

    def work() -> None:
        try:
            while True:
                with lock:
                    index = next(position, None)
                if index is None:
                    return
                results[index] = function(items[index])
        finally:
            connection.close()

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work) for _ in range(threads)]:
            future.result()
    return results


def orders_generate(
    *,
    count: int,
    product_ids: Sequence[int],
    user_ids: Sequence[int],
    status: str = "PENDING",
    live: int = 0,
    failure_reasons: Iterable[str] = (),
) -> list[int]:
    """Insert ``count + live`` orders set-based; answers their ids, ordinal 1 first.

    PENDING (the default): orders 1..count are overdue (their holds expired 1 s to 10 min ago), the
    ``live`` ones after them hold stock for a day; every pending order holds exactly its lines and
    its payment is PENDING. FAILED: ``failure_reasons`` in turn, payment FAILED, nothing held.
    Order ``g`` has 1 line (odd g) or 2 (even g) of products picked by g, 1 to 3 units each; its
    shopper's language alternates between English and Vietnamese.
    """
    products, users = len(product_ids), len(user_ids)
    assert products >= 1 and users >= 1 and status in ("PENDING", "FAILED")
    reasons = list(failure_reasons)
    assert status == "PENDING" or reasons, "failed orders need their reasons"
    currency = settings.SHOP_CURRENCY
    if status == "PENDING":
        reserved_until = (
            f"CASE WHEN b.g <= {count:d} THEN now() - make_interval(secs => 1 + mod(b.g, 600)) "
            "ELSE now() + interval '1 day' END"
        )
        failure_reason, completed_at = "''", "NULL"
    else:
        reserved_until = "now() - interval '1 hour'"
        reason_array = "ARRAY[" + ", ".join(f"'{reason}'" for reason in reasons) + "]"
        failure_reason = f"({reason_array})[1 + mod(b.g, {len(reasons):d})]"
        completed_at = "now()"
    order_id = column(Order, "id")
    last_line = "mod(b.g, 2)" if products > 1 else "0"  # one or two lines, of two different products
    steps: list[tuple[str, list | None]] = [
        (
            "CREATE TEMP TABLE bench_gen ON COMMIT DROP AS SELECT g, "
            f"nextval(pg_get_serial_sequence('{Order._meta.db_table}', 'id')) AS order_id "
            f"FROM generate_series(1, {count + live:d}) AS g",
            None,
        ),
        (  # product i of the set, by position
            "CREATE TEMP TABLE bench_products ON COMMIT DROP AS SELECT (u.i - 1)::int AS idx, "
            f"p.{column(Product, 'id')} AS product_id, p.{column(Product, 'name')} AS name, "
            f"p.{column(Product, 'price')} AS price FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(id, i) "
            f"JOIN {table(Product)} p ON p.{column(Product, 'id')} = u.id",
            [list(product_ids)],
        ),
        (
            "CREATE TEMP TABLE bench_lines ON COMMIT DROP AS "
            "SELECT b.g, b.order_id, k, p.product_id, p.name, p.price, 1 + mod(b.g + k, 3) AS quantity "
            f"FROM bench_gen b CROSS JOIN LATERAL generate_series(0, {last_line}) AS k "
            f"JOIN bench_products p ON p.idx = mod(b.g + k * {(products + 1) // 2:d}, {products:d})",
            None,
        ),
    ]
    order_values = {
        "id": "b.order_id",
        "user": f"(%s::bigint[])[1 + mod(b.g, {users:d})]",
        "status": f"'{status}'",
        "failure_reason": failure_reason,
        "transaction_id": "gen_random_uuid()",
        "total": "t.total",
        "currency": f"'{currency}'",
        "reserved_until": reserved_until,
        "language": "CASE WHEN mod(b.g, 2) = 0 THEN 'en' ELSE 'vi' END",
        "created_at": "now() - interval '1 day'",
        "completed_at": completed_at,
    }
    totals = "(SELECT order_id, sum(price * quantity) AS total FROM bench_lines GROUP BY order_id) t"
    steps.append(
        (
            insert_sql(
                Order, order_values, select_from=f"bench_gen b JOIN {totals} ON t.order_id = b.order_id"
            ),
            [list(user_ids)],
        )
    )
    line_values = {
        "order": "l.order_id",
        "product": "l.product_id",
        "product_name": "l.name",
        "quantity": "l.quantity",
        "unit_price": "l.price",
    }
    steps.append(
        (insert_sql(OrderLine, line_values, select_from="bench_lines l ORDER BY l.order_id, l.k"), None)
    )
    payment_values = {
        "order": f"o.{order_id}",
        "transaction_id": f"o.{column(Order, 'transaction_id')}",
        "status": f"'{status}'",
        "amount": f"o.{column(Order, 'total')}",
        "currency": f"o.{column(Order, 'currency')}",
    }
    orders_made = f"{table(Order)} o JOIN bench_gen b ON b.order_id = o.{order_id}"
    steps.append((insert_sql(Payment, payment_values, select_from=orders_made), None))
    if status == "PENDING":
        hold_values = {
            "order": "l.order_id",
            "product": "l.product_id",
            "quantity": "l.quantity",
            "expires_at": f"o.{column(Order, 'reserved_until')}",
        }
        holds_of = f"bench_lines l JOIN {table(Order)} o ON o.{order_id} = l.order_id"
        steps.append((insert_sql(ReservedStock, hold_values, select_from=holds_of), None))
        reserved = column(Stock, "reserved")
        steps.append(
            (
                f"UPDATE {table(Stock)} s SET {reserved} = s.{reserved} + h.units FROM (SELECT product_id, "
                "sum(quantity) AS units FROM bench_lines GROUP BY product_id) h "
                f"WHERE s.{column(Stock, 'product')} = h.product_id",
                None,
            )
        )
    with transaction.atomic(), connection.cursor() as cursor:
        for sql, params in steps:
            cursor.execute(sql, params)
        cursor.execute("SELECT order_id FROM bench_gen ORDER BY g")
        return [row[0] for row in cursor.fetchall()]
