"""Row 5: expiring overdue orders that have a PayPal order.

``n`` overdue pending orders, each with its PayPal order created at the simulator by the shop's own
``payment_start`` (16 at a time; not timed), never approved by the payer. Timed: one
``payment_expire_overdue`` settling them all; for each, the shop must ask PayPal (the simulator as
deployed, ``manage.py run_paypal_simulator``) before failing it with ``reservation_expired``.
Goal: 10,000 in under 2 minutes, i.e. at least 10,000 / 120 s = 83 orders/s whatever ``n``.
"""

from __future__ import annotations

from bench.dataset import analyze, in_threads, orders_generate, products_create, users_create
from bench.measure import Goal, Result, Stopwatch
from orders.models import FailureReason, Order, OrderStatus
from payments.expiry import payment_expire_overdue
from payments.models import Payment
from payments.services import payment_start

GOAL_ORDERS, GOAL_SECONDS = 10_000, 120
GOAL = Goal(f"{GOAL_ORDERS:,} in < {GOAL_SECONDS // 60} min")
CREATE_THREADS = 16


def run(bench) -> Result:
    count = bench.sizes.paypal_orders
    bench.simulator()
    users = users_create(prefix="paypal", count=min(count, 1000))
    products = products_create(prefix="PAYPAL", count=20, on_hand=6 * count)
    order_ids = orders_generate(count=count, product_ids=products, user_ids=users)
    with Stopwatch() as creating:
        in_threads(lambda order_id: payment_start(order_id=order_id), order_ids, threads=CREATE_THREADS)
    with_paypal = Payment.objects.filter(order_id__in=order_ids, provider_order_id__isnull=False).count()
    if with_paypal != count:
        raise RuntimeError(f"only {with_paypal} of {count} orders got their PayPal order")
    analyze()

    with Stopwatch() as settling:
        sweep = payment_expire_overdue()
    expired = Order.objects.filter(
        pk__in=order_ids, status=OrderStatus.FAILED, failure_reason=FailureReason.RESERVATION_EXPIRED
    ).count()
    bench.check(
        "every order with a PayPal order settled (failed, reservation_expired)",
        expired == count and len(sweep.settled_with_provider) == count,
        f"{expired} of {count} failed, {len(sweep.settled_with_provider)} reconciled with PayPal",
    )
    rate = count / settling.seconds
    projected = GOAL_ORDERS / rate
    return Result(
        row="5",
        title=f"expiring {count:,} overdue orders that have a PayPal order (simulator)",
        ours=rate,
        baseline=None,
        unit="orders/s",
        ratio=float("nan"),
        goal=GOAL,
        extra_conditions={f"{GOAL_ORDERS:,} in < {GOAL_SECONDS} s": projected < GOAL_SECONDS},
        notes=[
            f"{settling.seconds:.1f} s for {count:,} ({1000 / rate:.0f} ms each); "
            f"{GOAL_ORDERS:,} at this rate: {projected:,.0f} s",
            f"(set-up: their PayPal orders created in {creating.seconds:.1f} s, {CREATE_THREADS} at a time)",
        ],
    )
