"""``make bench`` (``python -m bench [--quick] [--only ROW]``): the rows of issue 15's table, each as
ours / baseline / ratio / goal / met?, measured in one run on a throw-away PostgreSQL database.

The bench runs the shop as deployed: this process and every process it starts (gunicorn from
gunicorn.conf.py, ``run_email_consumer``, the PayPal simulator) use ``shop.settings.production`` with a
complete environment pointing at services of the bench's own (``tests.fixtures.stack.ProductionStack``,
shared with the system test): the database ``shop_bench_<pid>`` (created, migrated by the Procfile's
release step, dropped at the end), the bundled Kafka-protocol broker, an SMTP sink, and Redis database
13 (``BENCH_REDIS_URL``) as cache and Celery broker. ``DATABASE_URL`` only names the PostgreSQL server.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import django
import environ

from bench.measure import loadavg
from bench.plan import FULL, QUICK, ROWS, Bench
from tests.fixtures.stack import ProductionStack, procfile

# Every process of the stack: rate limits and the per-shopper cap out of the way of a load test,
# and holds that outlive the run (no placed order becomes overdue under the sweep rows).
STACK_ENVIRONMENT = {
    "API_THROTTLE_ANON": "1000000/minute",
    "API_THROTTLE_USER": "1000000/minute",
    "API_THROTTLE_ORDERS": "1000000/minute",
    "ORDER_MAX_PENDING_PER_USER": "1000000",
    "RESERVATION_TTL_SECONDS": "86400",
}
# This process only: the rows publish the outbox themselves when they mean to (the email row), and
# the shop's INFO lines would drown the figures.
BENCH_PROCESS_ENVIRONMENT = {"OUTBOX_PUBLISH_ON_COMMIT": "false", "LOG_LEVEL": "WARNING"}


def rows_from(only: list[str] | None) -> list[str]:
    if not only:
        return list(ROWS)
    names = {name: row for row, (name, _module) in ROWS.items()}
    chosen = []
    for item in ",".join(only).split(","):
        row = names.get(item.strip(), item.strip())
        if row not in ROWS:
            raise SystemExit(
                f"unknown row {item!r}: one of {', '.join(f'{r} ({n})' for r, (n, _) in ROWS.items())}"
            )
        chosen.append(row)
    return sorted(set(chosen), key=list(ROWS).index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a minute or two in all")
    parser.add_argument("--only", action="append", metavar="ROW", help="run only this row (1-5 or its name)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs and say where")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rows = rows_from(args.only)

    server = environ.Env.db_url_config(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop")
    )
    if server["ENGINE"] != "django.db.backends.postgresql":
        raise SystemExit(
            "the bench runs on PostgreSQL: set DATABASE_URL to a postgres:// URL (its server is used)"
        )
    folder = Path(tempfile.mkdtemp(prefix="shop-bench-"))
    stack = ProductionStack(
        folder,
        db=server,
        db_name=f"shop_bench_{os.getpid()}",
        redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
        CACHE_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
        **STACK_ENVIRONMENT,
    )
    os.environ.update(stack.env("bench"))
    os.environ.update(BENCH_PROCESS_ENVIRONMENT)
    django.setup()
    from bench.runner import run, say

    say(
        f"bench: rows {', '.join(rows)}, {'quick' if args.quick else 'full'} sizes {sizes}",
        f"database {stack.db_name} on {server['HOST'] or '127.0.0.1'}:{server['PORT'] or 5432}, "
        f"{os.cpu_count()} CPUs, load average {loadavg()}",
    )
    failed = True
    try:
        stack.start_services()
        stack.run("release", procfile()["release"])
        code = run(Bench(sizes=sizes, stack=stack), rows)
        failed = code != 0
        return code
    finally:
        from django.db import connections

        connections.close_all()
        stack.close()
        if args.keep_logs or failed:
            say(f"the processes' logs are in {folder / 'logs'}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
