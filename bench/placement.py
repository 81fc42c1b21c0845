"""Row 1: placements per second on one hot product.

ours: ``order_place`` run on the shop's order pool (``orders.worker_pool``, ``ORDER_WORKERS`` workers
and a queue of ``ORDER_QUEUE_SIZE``) by as many client threads as the pool and its queue hold, so the
queue stays full, as the API hands placements to it (``run_in_pool``); one shopper per order, one unit
of the same product each time.

baseline: pgbench, as many clients as the pool has workers, running the same transaction in pure SQL
on the same tables: insert the order, its line, reserve with one conditional
``UPDATE ... SET reserved = reserved + 1 WHERE ... AND on_hand - reserved >= 1``, insert the hold and
the payment with the order's ``transaction_id``, commit. Its INSERTs are written from the models
(``bench.sqlgen``), so the script follows the schema.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from bench.dataset import products_create, users_create
from bench.measure import Goal, Result, Stopwatch
from bench.sqlgen import column, insert_sql, sql_literal, table
from inventory.models import Product, ReservedStock, Stock
from orders.errors import Busy
from orders.models import Order, OrderLine
from orders.services import order_place
from orders.worker_pool import pool_shutdown, run_in_pool
from payments.models import Payment

GOAL = Goal(">= 0.5 (ours / pgbench)", at_least=0.5)
WARMUP_ORDERS = 50


class BaselineFailed(RuntimeError):
    pass


def pgbench_script(*, product_id: int) -> str:
    """One placement of one unit of ``product_id`` by shopper ``:user_id``, in pure SQL."""
    product = Product.objects.get(pk=product_id)
    ttl = f"now() + make_interval(secs => {int(settings.RESERVATION_TTL_SECONDS):d})"
    price = sql_literal(product.price)
    order = insert_sql(
        Order,
        {
            "user": ":user_id",
            "status": "'PENDING'",
            "transaction_id": "gen_random_uuid()",
            "total": price,
            "currency": sql_literal(product.currency),
            "reserved_until": ttl,
        },
        returning=f"{column(Order, 'id')} AS order_id, {column(Order, 'transaction_id')} AS transaction_id",
    )
    line = insert_sql(
        OrderLine,
        {
            "order": ":order_id",
            "product": str(product.pk),
            "product_name": sql_literal(product.name),
            "quantity": "1",
            "unit_price": price,
        },
    )
    reserved, stock_product = column(Stock, "reserved"), column(Stock, "product")
    reserve = (
        f"UPDATE {table(Stock)} SET {reserved} = {reserved} + 1 WHERE {stock_product} = {product.pk} "
        f"AND {column(Stock, 'on_hand')} - {reserved} >= 1 RETURNING {stock_product} AS held_product_id"
    )
    hold = insert_sql(
        ReservedStock,
        {"order": ":order_id", "product": ":held_product_id", "quantity": "1", "expires_at": ttl},
    )
    payment = insert_sql(
        Payment,
        {
            "order": ":order_id",
            "transaction_id": "':transaction_id'::uuid",
            "amount": price,
            "currency": sql_literal(product.currency),
        },
    )
    # \gset stores the answer's columns in variables; a reservation that finds no stock answers no
    # row, and the transaction fails there, before anything is held.
    return "\n".join(
        [
            r"\set user_id random(:user_first, :user_last)",
            "BEGIN;",
            order + r" \gset",
            line + ";",
            reserve + r" \gset",
            hold + ";",
            payment + ";",
            "COMMIT;",
            "",
        ]
    )


def _contiguous(user_ids: list[int]) -> tuple[int, int]:
    first, last = min(user_ids), max(user_ids)
    if last - first + 1 != len(set(user_ids)):
        raise ValueError("pgbench picks shoppers from a range: their ids must be contiguous")
    return first, last


def pgbench_run(*, product_id: int, user_ids: list[int], clients: int, per_client: int) -> tuple[float, int]:
    """Run the script ``per_client`` times on each of ``clients`` connections; (tps, transactions
    processed). Raises ``BaselineFailed`` when pgbench fails or processes fewer."""
    first, last = _contiguous(user_ids)
    db = connection.settings_dict
    with tempfile.TemporaryDirectory(prefix="bench-pgbench-") as folder:
        script = Path(folder) / "placement.sql"
        script.write_text(pgbench_script(product_id=product_id))
        command = [
            "pgbench",
            "--no-vacuum",
            f"--client={clients}",
            f"--jobs={clients}",
            f"--transactions={per_client}",
            f"--file={script}",
            f"--define=user_first={first}",
            f"--define=user_last={last}",
            f"--host={db['HOST'] or '127.0.0.1'}",
            f"--port={db['PORT'] or 5432}",
            f"--username={db['USER']}",
            db["NAME"],
        ]
        environment = {"PGPASSWORD": db["PASSWORD"]} if db["PASSWORD"] else {}
        answer = subprocess.run(
            command, capture_output=True, text=True, timeout=600, env={**os.environ, **environment}
        )
    output = answer.stdout + answer.stderr
    processed = re.search(r"number of transactions actually processed: (\d+)/(\d+)", output)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
    if not processed or not tps:
        raise BaselineFailed(f"pgbench failed ({answer.returncode}):\n{output[-2000:]}")
    done, wanted = int(processed[1]), int(processed[2])
    if done != wanted:
        raise BaselineFailed(f"pgbench processed {done} of {wanted} transactions:\n{output[-2000:]}")
    return float(tps[1]), done


def pool_run(*, product_id: int, user_ids: list[int], clients: int) -> tuple[float, int]:
    """Place one order per shopper through the pool from ``clients`` threads; (seconds, Busy answers)."""
    user_model = get_user_model()
    shoppers = iter(user_ids)
    lock = threading.Lock()
    busy = itertools.count()
    errors: list[BaseException] = []

    def client() -> None:
        try:
            while True:
                with lock:
                    user_id = next(shoppers, None)
                if user_id is None:
                    return
                while True:
                    try:
                        run_in_pool(
                            order_place,
                            user=user_model(pk=user_id),
                            lines=[{"product": product_id, "quantity": 1}],
                        )
                        break
                    except Busy:  # the queue was full for an instant: as a client would, try again
                        next(busy)
                        time.sleep(0.001)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=client, name=f"bench-client-{index}") for index in range(clients)]
    with Stopwatch() as watch:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return watch.seconds, next(busy)


def run(bench) -> Result:
    orders = bench.sizes.placement_orders
    workers, queue_size = settings.ORDER_WORKERS, settings.ORDER_QUEUE_SIZE
    per_client = math.ceil(orders / workers)
    ours_users = users_create(prefix="place", count=WARMUP_ORDERS + orders)
    pgbench_users = users_create(prefix="pgbench", count=orders)
    (ours_product,) = products_create(prefix="HOT-OURS", count=1, on_hand=WARMUP_ORDERS + orders)
    (pgbench_product,) = products_create(prefix="HOT-PGBENCH", count=1, on_hand=workers * per_client)
    clients = workers + queue_size
    try:
        # Warm-up: the pool's workers open their connections (pgbench's tps leaves connecting out too).
        pool_run(product_id=ours_product, user_ids=ours_users[:WARMUP_ORDERS], clients=clients)
        seconds, busy = pool_run(
            product_id=ours_product, user_ids=ours_users[WARMUP_ORDERS:], clients=clients
        )
    finally:
        pool_shutdown()
    ours = orders / seconds
    baseline, processed = pgbench_run(
        product_id=pgbench_product, user_ids=pgbench_users, clients=workers, per_client=per_client
    )
    stock = Stock.objects.get(pk=ours_product)
    bench.check(
        "placement: every order of ours held exactly one unit",
        stock.reserved == WARMUP_ORDERS + orders
        and Order.objects.filter(lines__product_id=ours_product).count() == WARMUP_ORDERS + orders,
        f"reserved {stock.reserved} of {stock.on_hand}",
    )
    return Result(
        row="1",
        title=f"placements/s on one hot product: {orders:,} orders through the pool of {workers} "
        f"(queue {queue_size}, {clients} client threads) vs pgbench, {workers} clients, "
        f"{processed:,} transactions",
        ours=ours,
        baseline=baseline,
        unit="/s",
        ratio=ours / baseline,
        goal=GOAL,
        notes=[f"ours took {seconds:.1f} s; the queue was full {busy} times (the client tried again)"],
    )
