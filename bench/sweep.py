"""Row 4: expiring overdue orders that have no PayPal order.

ours: ``order_expire_overdue`` (the beat task's service) on ``n`` overdue orders.
baseline: one SQL statement (CTEs) making the same state change: the orders FAILED with
``reservation_expired``, their payments FAILED, their holds deleted, the stock's ``reserved`` lowered,
one outbox row per order carrying the same message the shop writes.

Both run on data sets made alike (``bench.dataset.orders_generate`` on two product sets, the same
shoppers) with a tenth as many orders again still holding stock, which both must leave alone.
Afterwards the end states are compared (orders and payments by status, stock counters by product
position, holds left, outbox rows per order and their messages) and any difference fails the bench.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from bench.dataset import analyze, orders_generate, products_create, users_create
from bench.measure import Goal, Result, Stopwatch
from bench.sqlgen import column, insert_sql, table
from inventory.models import ReservedStock, Stock
from notifications.models import EventType, OutboxEvent
from orders.models import FailureReason, Order, OrderLine, OrderStatus
from orders.outcomes import SCHEMA_VERSION, reason_payload
from orders.services import order_expire_overdue
from payments.models import Payment, PaymentStatus

PRODUCTS = 50
GOAL = Goal("<= 3x (ours / baseline)", at_most=3.0)


def baseline_sql() -> tuple[str, dict]:
    """The whole sweep as one statement, and its parameters."""
    o, p, h, s, line = (partial(column, model) for model in (Order, Payment, ReservedStock, Stock, OrderLine))
    user_model = get_user_model()
    reason = FailureReason.RESERVATION_EXPIRED
    params = {
        "pending": str(OrderStatus.PENDING),
        "failed": str(OrderStatus.FAILED),
        "reason": str(reason),
        "payment_failed": str(PaymentStatus.FAILED),
        "payment_pending": str(PaymentStatus.PENDING),
        "event_type": str(EventType.ORDER_FAILED),
        "default_reason": json.dumps(reason_payload(reason, language=settings.LANGUAGE_CODE, refunded=False)),
        "order_url_prefix": settings.SITE_URL.rstrip("/") + "/orders/",
        "schema_version": SCHEMA_VERSION,
    }
    cases = []
    for index, (code, _name) in enumerate(settings.LANGUAGES):
        params[f"language_{index}"] = code
        params[f"reason_{index}"] = json.dumps(reason_payload(reason, language=code, refunded=False))
        cases.append(f"WHEN %(language_{index})s THEN %(reason_{index})s::jsonb")
    reason_json = f"CASE f.language {' '.join(cases)} ELSE %(default_reason)s::jsonb END"
    lines = (
        "SELECT coalesce(jsonb_agg(jsonb_build_object("
        f"'product', l.{line('product')}, 'name', l.{line('product_name')}, "
        f"'quantity', l.{line('quantity')}, "
        f"'unit_price', l.{line('unit_price')}::text, "
        f"'total', (l.{line('unit_price')} * l.{line('quantity')})::numeric(12, 2)::text) "
        f"ORDER BY l.{line('id')}), '[]'::jsonb) FROM {table(OrderLine)} l WHERE l.{line('order')} = f.id"
    )
    email = (
        f"(SELECT u.{column(user_model, 'email')} FROM {table(user_model)} u "
        f"WHERE u.{column(user_model, 'id')} = f.user_id)"
    )
    payload = (
        "jsonb_build_object('schema_version', %(schema_version)s::int, "
        "'event_id', f.event_id::text, 'type', %(event_type)s::text, "
        "'occurred_at', to_jsonb(now()), "
        "'order', jsonb_build_object('id', f.id, 'transaction_id', f.transaction_id::text, "
        f"'total', f.total::text, 'currency', f.currency, "
        "'url', %(order_url_prefix)s || f.id::text || '/', "
        f"'lines', ({lines})), "
        f"'user', jsonb_build_object('id', f.user_id, 'email', coalesce({email}, ''), "
        "'language', f.language), "
        f"'refunded', false, 'reason', {reason_json})"
    )
    outbox = insert_sql(
        OutboxEvent,
        {
            "event_id": "f.event_id",
            "type": "%(event_type)s",
            "order": "f.id",
            "key": "f.id::text",
            "payload": payload,
        },
        select_from="failed f",
    )
    sql = f"""
    WITH due AS (
        SELECT o.{o("id")} AS id FROM {table(Order)} o
        JOIN {table(Payment)} p ON p.{p("order")} = o.{o("id")}
        WHERE o.{o("status")} = %(pending)s AND o.{o("reserved_until")} <= now()
            AND p.{p("provider_order_id")} IS NULL
        ORDER BY o.{o("id")}
        FOR UPDATE OF o SKIP LOCKED
    ), failed AS (
        UPDATE {table(Order)} o SET {o("status")} = %(failed)s, {o("failure_reason")} = %(reason)s,
            {o("completed_at")} = now(), {o("updated_at")} = now()
        FROM due WHERE o.{o("id")} = due.id
        RETURNING o.{o("id")} AS id, o.{o("user")} AS user_id, o.{o("transaction_id")} AS transaction_id,
            o.{o("total")} AS total, o.{o("currency")} AS currency, o.{o("language")} AS language,
            gen_random_uuid() AS event_id
    ), paid AS (
        UPDATE {table(Payment)} p SET {p("status")} = %(payment_failed)s, {p("updated_at")} = now()
        FROM due WHERE p.{p("order")} = due.id AND p.{p("status")} = %(payment_pending)s
    ), released AS (
        DELETE FROM {table(ReservedStock)} h USING due WHERE h.{h("order")} = due.id
        RETURNING h.{h("product")} AS product_id, h.{h("quantity")} AS quantity
    ), restocked AS (
        UPDATE {table(Stock)} s SET {s("reserved")} = s.{s("reserved")} - r.units
        FROM (SELECT product_id, sum(quantity) AS units FROM released GROUP BY product_id) r
        WHERE s.{s("product")} = r.product_id
    )
    {outbox}
    """
    return sql, params


def baseline_run() -> int:
    sql, params = baseline_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _payload_shape(payload: dict) -> tuple:
    """What an outbox message says, without what differs between two data sets (ids, times)."""
    order, user, reason = payload["order"], payload["user"], payload["reason"] or {}
    lines = sorted(
        (line["name"], line["quantity"], line["unit_price"], line["total"]) for line in order["lines"]
    )
    return (
        payload["type"],
        order["total"],
        order["currency"],
        tuple(lines),
        user["email"],
        user["language"],
        tuple(sorted(reason.items())),
        payload.get("schema_version"),
        payload.get("refunded"),
        tuple(sorted(payload)),
        tuple(sorted(order)),
    )


def end_state(order_ids: list[int], product_ids: list[int]) -> dict:
    """What a sweep leaves behind for one data set, comparable between two alike data sets."""
    orders = Order.objects.filter(pk__in=order_ids)
    stock = dict(Stock.objects.filter(pk__in=product_ids).values_list("pk", "on_hand"))
    reserved = dict(Stock.objects.filter(pk__in=product_ids).values_list("pk", "reserved"))
    events = OutboxEvent.objects.filter(order_id__in=order_ids)
    per_order = Counter(events.values_list("order_id", flat=True))
    return {
        "orders by status": Counter(orders.values_list("status", "failure_reason")),
        "payments by status": Counter(Payment.objects.filter(order_id__in=order_ids).values_list("status")),
        "stock (on hand, reserved) by product position": [(stock[pk], reserved[pk]) for pk in product_ids],
        "holds left": ReservedStock.objects.filter(order_id__in=order_ids).count(),
        "outbox rows per order": Counter(per_order.get(pk, 0) for pk in order_ids),
        "outbox messages": Counter(
            _payload_shape(payload) for payload in events.values_list("payload", flat=True)
        ),
    }


def end_state_differences(ours: dict, baseline: dict) -> list[str]:
    return [
        f"{name}: ours {_short(ours[name])} != baseline {_short(baseline[name])}"
        for name in ours
        if ours[name] != baseline[name]
    ]


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 400 else text[:400] + "..."


def measure(
    *, orders: int, products: int = PRODUCTS, shoppers: int = 1000
) -> tuple[float, float, dict, list[str]]:
    """Make both data sets, run the baseline then ours; (ours s, baseline s, ours' end state,
    differences). Needs a database with nothing else overdue in it."""
    live = orders // 10
    users = users_create(prefix=f"sweep{Order.objects.count()}", count=min(shoppers, orders))
    on_hand = 6 * (orders + live)  # more than any product can be held for
    baseline_products = products_create(prefix=f"SWEEP-B-{orders}", count=products, on_hand=on_hand)
    ours_products = products_create(prefix=f"SWEEP-A-{orders}", count=products, on_hand=on_hand)

    baseline_orders = orders_generate(count=orders, live=live, product_ids=baseline_products, user_ids=users)
    analyze()
    with Stopwatch() as baseline_watch:
        expired = baseline_run()
    assert expired == orders, f"the baseline statement expired {expired} orders, not {orders}"

    ours_orders = orders_generate(count=orders, live=live, product_ids=ours_products, user_ids=users)
    analyze()
    with Stopwatch() as ours_watch:
        sweep = order_expire_overdue()
    assert len(sweep.released) == orders, f"order_expire_overdue released {len(sweep.released)}, not {orders}"

    ours_state = end_state(ours_orders, ours_products)
    differences = end_state_differences(ours_state, end_state(baseline_orders, baseline_products))
    return ours_watch.seconds, baseline_watch.seconds, ours_state, differences


def run(bench) -> Result:
    orders = bench.sizes.sweep_orders
    ours, baseline, state, differences = measure(orders=orders)
    bench.check(
        "sweep end state equals the SQL baseline's",
        not differences,
        "; ".join(differences) or f"{dict(state['orders by status'])}, holds left {state['holds left']}",
    )
    return Result(
        row="4",
        title=f"expiring {orders:,} overdue orders without a PayPal order "
        f"(and leaving {orders // 10:,} live ones alone)",
        ours=ours,
        baseline=baseline,
        unit="s",
        ratio=ours / baseline,
        goal=GOAL,
        notes=[f"ours {orders / ours:,.0f} orders/s, baseline {orders / baseline:,.0f} orders/s"],
    )
