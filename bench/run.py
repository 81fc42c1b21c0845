"""Benchmarks of the checkout, printed as ratios against a baseline measured in the same run.

    make bench            # or: .venv/bin/python bench/run.py [--orders N]

1. Expiry sweep: the set-based sweep (``order_expire_overdue``) against the one-order-at-a-time
   baseline (``order_fail`` per order) on the same number of expired orders.
2. Placement: orders placed by many request threads through the worker pool, against the same
   orders placed one after another on one thread.

It runs on a throw-away PostgreSQL database (``test_<name>`` beside DATABASE_URL's), never on yours.
"""

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings.test")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop_bench")

import django

django.setup()
from django.conf import settings as _s

# As in production (shop/settings/production.py): worker threads reuse their connection.
_s.DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("CONN_MAX_AGE", "60"))

from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import setup_databases, teardown_databases
from django.utils import timezone

from inventory.models import ReservedStock, Stock
from inventory.services import product_upsert
from orders.models import Order
from orders.services import order_expire_overdue, order_fail, order_place
from orders.worker_pool import WorkerPool


def make_products(prefix, count, on_hand):
    from decimal import Decimal

    return [
        product_upsert(
            sku=f"{prefix}-{i}",
            name=f"{prefix} {i}",
            slug=f"{prefix.lower()}-{i}",
            price=Decimal("5.00"),
            currency="USD",
            on_hand=on_hand,
        )[0]
        for i in range(count)
    ]


def expired_orders(user, products, count):
    orders = [
        order_place(user=user, lines=[{"product": products[i % len(products)].pk, "quantity": 1}])
        for i in range(count)
    ]
    past = timezone.now() - timedelta(seconds=1)
    ids = [o.pk for o in orders]
    Order.objects.filter(pk__in=ids).update(reserved_until=past)
    ReservedStock.objects.filter(order_id__in=ids).update(expires_at=past)
    return ids


def bench_sweep(user, count):
    products = make_products("SWEEP", 10, count)
    baseline_ids = expired_orders(user, products, count)
    started = time.perf_counter()
    for order_id in baseline_ids:
        order_fail(order_id=order_id, reason="reservation_expired")
    baseline = time.perf_counter() - started

    expired_orders(user, products, count)
    started = time.perf_counter()
    sweep = order_expire_overdue()
    measured = time.perf_counter() - started
    assert len(sweep.released) == count
    return baseline, measured


def bench_placement(users, count, workers):
    products = make_products("PLACE", 20, count)

    def place(i):
        return order_place(
            user=users[i % len(users)], lines=[{"product": products[i % 20].pk, "quantity": 1}]
        )

    started = time.perf_counter()
    for i in range(count):
        place(i)
    baseline = time.perf_counter() - started
    connection.close()

    pool = WorkerPool(workers=workers, queue_size=count)

    def request(i):
        try:
            return pool.submit(place, i).result(timeout=120)
        finally:
            connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers * 2) as requests:
        list(requests.map(request, range(count)))
    measured = time.perf_counter() - started
    pool.shutdown()
    return baseline, measured


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=5)
    args = parser.parse_args()

    old = setup_databases(verbosity=0, interactive=False)
    try:
        users = [get_user_model().objects.create_user(username=f"bench{i}") for i in range(10)]
        baseline, measured = bench_sweep(users[0], args.orders)
        print(
            f"expiry sweep, {args.orders} expired orders: one-by-one {baseline:.2f}s, "
            f"set-based {measured:.2f}s, speed-up x{baseline / measured:.1f}"
        )
        baseline, measured = bench_placement(users, args.orders, args.workers)
        print(
            f"placement, {args.orders} orders: one thread {baseline:.2f}s, "
            f"pool of {args.workers} {measured:.2f}s, throughput ratio x{baseline / measured:.2f}"
        )
        assert all(0 <= s.reserved <= s.on_hand for s in Stock.objects.all())
        print(f"threads alive at the end: {threading.active_count()}")
    finally:
        connection.close()
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
