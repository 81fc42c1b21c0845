"""The checkout's Prometheus series, served by the web role's ``/metrics`` (core/metrics.py).

Each process counts what happens in it. An order's final outcome is counted by the process that
decided it, once its transaction committed: web for captures, cancels, webhooks and the holds a
placement releases; the celery worker for the beat's expiry sweep, which serves no metrics (its
``reservation_expired`` orders are not in the web's counter; the admin's numbers come from the database).
"""

from django.db import transaction
from prometheus_client import Counter, Gauge, Histogram

from core.metrics import multiprocess_dir_ensure
from orders.models import FailureReason

multiprocess_dir_ensure()

PLACED, SUCCEEDED, FAILED = "placed", "succeeded", "failed"

PLACEMENT_SECONDS = Histogram(
    "shop_order_placement_seconds",
    "Time a placement spent in the order pool (waiting for a worker, then placing), by outcome: "
    "placed, or the error code of the answer (out_of_stock, busy, ...).",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BUSY_ANSWERS = Counter(
    "shop_order_busy",
    "Placements answered 503 busy: the order queue was full, or the wait for a worker ran out.",
)
POOL_QUEUE_DEPTH = Gauge(
    "shop_order_pool_queue_depth",
    "Placements waiting in the order queue for a worker (summed over the live web processes).",
    multiprocess_mode="livesum",
)
ORDERS = Counter(
    "shop_orders",
    "Orders placed, succeeded and failed (reason: the failure reason), counted once committed.",
    ["outcome", "reason"],
)

# Every series exists, at zero, before its first event.
PLACEMENT_SECONDS.labels(outcome=PLACED)
ORDERS.labels(outcome=PLACED, reason="")
ORDERS.labels(outcome=SUCCEEDED, reason="")
for _reason in FailureReason:
    ORDERS.labels(outcome=FAILED, reason=_reason.value)


def orders_count_on_commit(*, outcome: str, reason: str = "", count: int = 1) -> None:
    """Count ``count`` orders with this outcome once the caller's transaction commits (never for one
    that rolls back)."""
    counter = ORDERS.labels(outcome=outcome, reason=str(reason or ""))
    transaction.on_commit(lambda: counter.inc(count))
