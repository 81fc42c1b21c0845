"""Row 2: ``POST /api/orders/`` per second, 32 concurrent clients, gunicorn as shipped.

ours: ``POST /api/orders/`` (one unit of one of 10 products; each client cycles through 16 shoppers
of its own) against gunicorn started by the Procfile's ``web`` line (``gunicorn.conf.py``: gthread,
its default processes and threads) with production settings, Redis as the shared cache, and the
PayPal simulator as deployed (``manage.py run_paypal_simulator``): each placement also creates its
PayPal order there. Rate limits and the per-shopper cap are raised through their variables.
baseline: ``GET /api/orders/<id>/`` (each shopper's own last order) on the same server, same clients.

The load comes from 4 processes of 8 threads (``bench.http_load``), each thread with one kept-alive
connection; requests answered during the warm-up are not counted. POST latencies are reported as p50
and p99 (the goal asks p99 < 150 ms).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

from rest_framework.authtoken.models import Token

from bench.dataset import products_create, users_create
from bench.measure import Goal, Result, percentile, process_tree, rss_kib
from bench.processes import web_start
from tests.fixtures.stack import ROOT, access_log_statuses, procfile

PROCESSES, THREADS = 4, 8  # 32 concurrent clients
SHOPPERS_PER_CLIENT = 16
PRODUCTS = 10
P99_GOAL_MS = 150
GOAL = Goal(f">= 0.4 (POST / GET), p99 < {P99_GOAL_MS} ms", at_least=0.4)


def load(*, port: int, method: str, threads: list[list[dict]], warmup: float, seconds: float) -> dict:
    """Run ``threads`` (one list of requests each) spread over ``PROCESSES`` client processes."""
    start_at = time.time() + 2.0  # every process is up and connected by then
    job = {
        "host": "127.0.0.1",
        "port": port,
        "method": method,
        "start_at": start_at,
        "measure_from": start_at + warmup,
        "end_at": start_at + warmup + seconds,
    }
    clients = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.http_load"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    for index, client in enumerate(clients):
        client.stdin.write(json.dumps({**job, "threads": threads[index::PROCESSES]}))
        client.stdin.close()
    merged = {"statuses": Counter(), "latencies_ms": [], "created": {}, "errors": 0, "busy": 0}
    for client in clients:
        output = client.stdout.read()
        if client.wait(warmup + seconds + 120) != 0:
            raise RuntimeError(f"a load process exited with {client.returncode}")
        part = json.loads(output)
        merged["statuses"].update({int(status): n for status, n in part["statuses"].items()})
        merged["latencies_ms"] += part["latencies_ms"]
        merged["created"].update(part["created"])
        merged["errors"] += part["errors"]
        merged["busy"] += part["busy"]
    return merged


def run(bench) -> Result:
    stack, sizes = bench.stack, bench.sizes
    bench.simulator()
    products = products_create(prefix="HTTP", count=PRODUCTS, on_hand=10_000_000)
    users = users_create(prefix="http", count=PROCESSES * THREADS * SHOPPERS_PER_CLIENT)
    tokens = [
        token.key
        for token in Token.objects.bulk_create(Token(user_id=pk, key=Token.generate_key()) for pk in users)
    ]
    web_start(stack, procfile()["web"])
    clients = [tokens[index :: PROCESSES * THREADS] for index in range(PROCESSES * THREADS)]
    posts = [
        [
            {
                "path": "/api/orders/",
                "token": token,
                "body": {"lines": [{"product": products[number % PRODUCTS], "quantity": 1}]},
            }
            for number, token in enumerate(client)
        ]
        for client in clients
    ]
    try:
        placed = load(
            port=stack.web_port,
            method="POST",
            threads=posts,
            warmup=sizes.http_warmup,
            seconds=sizes.http_seconds,
        )
        gets = [
            [
                {"path": f"/api/orders/{placed['created'][token]}/", "token": token}
                for token in client
                if token in placed["created"]
            ]
            for client in clients
        ]
        if not all(gets):
            raise RuntimeError(f"some clients placed no order at all: {dict(placed['statuses'])}")
        read = load(
            port=stack.web_port,
            method="GET",
            threads=gets,
            warmup=sizes.http_warmup,
            seconds=sizes.http_seconds,
        )
        for pid in process_tree(stack.processes["web"].pid):
            role = "master" if pid == stack.processes["web"].pid else "worker"
            bench.memory[f"web: gunicorn {role} (pid {pid})"] = rss_kib(pid)
    finally:
        if "web" in stack.processes:
            stack.stop("web")

    post_rate = placed["statuses"][201] / sizes.http_seconds
    get_rate = read["statuses"][200] / sizes.http_seconds
    p50, p99 = percentile(placed["latencies_ms"], 0.5), percentile(placed["latencies_ms"], 0.99)
    get_p50, get_p99 = percentile(read["latencies_ms"], 0.5), percentile(read["latencies_ms"], 0.99)
    server_errors = Counter(
        status for method, _path, status in access_log_statuses(stack.log("web")) if status >= 500
    )
    bench.check(
        "http: no 5xx but 503 busy (gunicorn's access log)",
        set(server_errors) <= {503},
        f"{dict(server_errors) or 'none'}",
    )
    return Result(
        row="2",
        title=f"POST /api/orders/ per s, {PROCESSES * THREADS} clients, gunicorn as shipped, "
        "vs GET /api/orders/<id>/",
        ours=post_rate,
        baseline=get_rate,
        unit="/s",
        ratio=post_rate / get_rate if get_rate else float("nan"),
        goal=GOAL,
        extra_conditions={f"POST p99 < {P99_GOAL_MS} ms": p99 < P99_GOAL_MS},
        notes=[
            f"POST latency p50 {p50:.0f} ms, p99 {p99:.0f} ms; "
            f"GET p50 {get_p50:.0f} ms, p99 {get_p99:.0f} ms",
            f"POST answers {dict(sorted(placed['statuses'].items()))} (503 busy: {placed['busy']}), "
            f"GET answers {dict(sorted(read['statuses'].items()))}, transport errors "
            f"{placed['errors'] + read['errors']}; counted over {sizes.http_seconds:g} s after a "
            f"{sizes.http_warmup:g} s warm-up",
        ],
    )
