"""The order-placement pool: a fixed number of worker threads fed by a bounded queue.

A request hands its placement to the pool and waits for the answer. When the queue is full the
request is refused at once (``Busy``, HTTP 503) instead of piling up behind the database: the
pool bounds how many placements compete for stock locks at a time. Each job runs in its own
transaction (the service's); an exception rolls it back and travels to the waiting request. Worker
threads treat their database connection as Django treats a request's: closed after a job unless
CONN_MAX_AGE keeps it, closed after an error, and closed when the pool shuts down. With
CONN_HEALTH_CHECKS a kept connection is checked (``SELECT 1``) before a job only when it has been idle
for ``HEALTH_CHECK_IDLE_SECONDS``: one that answered the previous job a moment ago is not asked again,
a round trip less per placement under load. Django makes the check outside the job's transaction.

A job runs under the request id of the request that submitted it (core/logs.py), so the worker's
log lines name the request. ``run_in_pool`` feeds the series of orders/metrics.py: the placement's
time in the pool by outcome, the queue's depth and the 503 ``busy`` answers.
"""

import logging
import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings
from django.db import close_old_connections, connections

from core.errors import ShopError
from core.logs import request_id_bound, request_id_get
from orders.errors import Busy, OrderError, PlacementFailed
from orders.metrics import BUSY_ANSWERS, PLACED, PLACEMENT_SECONDS, POOL_QUEUE_DEPTH

logger = logging.getLogger(__name__)

_STOP = object()

# A worker's kept connection that finished a job less than this long ago is not health-checked again.
HEALTH_CHECK_IDLE_SECONDS = 1.0


class WorkerPool:
    def __init__(self, *, workers: int, queue_size: int, name: str = "order-worker"):
        if workers < 1 or queue_size < 1:
            raise ValueError("a pool needs at least one worker and a queue of at least one")
        self.workers = workers
        self.queue_size = queue_size
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._local = threading.local()  # each worker's last job done without error (monotonic)
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{index}", daemon=True)
            for index in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        """Queue ``fn(*args, **kwargs)``; raises ``Busy`` at once when the queue is full."""
        future: Future = Future()
        # The request id travels with the job (not the whole context: the request thread's database
        # connection must stay in that thread).
        job = (future, fn, args, kwargs, request_id_get(), time.monotonic())
        POOL_QUEUE_DEPTH.inc()  # before the put: a worker may take the job at once
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            POOL_QUEUE_DEPTH.dec()
            raise Busy() from None
        return future

    def shutdown(self, timeout: float = 10.0) -> None:
        for _ in self._threads:
            self._queue.put((None, _STOP, (), {}, None, 0.0))
        for thread in self._threads:
            thread.join(timeout)

    def _work(self) -> None:
        try:
            while True:
                future, fn, args, kwargs, request_id, queued_at = self._queue.get()
                if fn is _STOP:
                    return
                POOL_QUEUE_DEPTH.dec()
                with request_id_bound(request_id):
                    self._run(future, fn, args, kwargs, queued_at)
        finally:
            connections.close_all()

    def _run(self, future: Future, fn, args, kwargs, queued_at: float) -> None:
        started = time.monotonic()
        outcome = "cancelled"
        try:
            # As Django does around a request: a connection that is broken or past
            # CONN_MAX_AGE is closed, before and after the job. With CONN_MAX_AGE > 0
            # (production) each worker keeps one connection, so the pool holds at most
            # ORDER_WORKERS of them; with 0 it closes after every job.
            close_old_connections()
            if started - getattr(self._local, "succeeded_at", float("-inf")) < HEALTH_CHECK_IDLE_SECONDS:
                for connection in connections.all(initialized_only=True):
                    connection.health_check_done = True  # it answered the previous job a moment ago
            if future.set_running_or_notify_cancel():
                result = fn(*args, **kwargs)
                outcome = f"order {result.pk}" if hasattr(result, "pk") else "done"
                future.set_result(result)
            self._local.succeeded_at = time.monotonic()
        except BaseException as error:
            outcome = getattr(error, "code", type(error).__name__)
            future.set_exception(error)
            # The connection may be in any state after an error: the next job starts afresh.
            connections.close_all()
            self._local.succeeded_at = float("-inf")
        finally:
            close_old_connections()
            self._queue.task_done()
            logger.info(
                "%s: %s (waited %.3f s, ran %.3f s)",
                getattr(fn, "__name__", "job"),
                outcome,
                started - queued_at,
                time.monotonic() - started,
            )


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def get_pool() -> WorkerPool:
    """This process's pool, built on first use from ORDER_WORKERS and ORDER_QUEUE_SIZE."""
    global _pool
    with _pool_lock:
        wanted = (settings.ORDER_WORKERS, settings.ORDER_QUEUE_SIZE)
        if _pool is None or (_pool.workers, _pool.queue_size) != wanted:
            if _pool is not None:
                _pool.shutdown()
            _pool = WorkerPool(workers=wanted[0], queue_size=wanted[1])
        return _pool


def pool_shutdown(timeout: float = 10.0) -> None:
    """Stop this process's pool once the jobs already queued have run (gunicorn's ``worker_exit``:
    the process is going away). A later ``get_pool()`` builds a new one."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(timeout)


def run_in_pool(fn, /, *args, **kwargs):
    """Run ``fn`` on the pool and return its result; domain errors pass through unchanged, any other
    error becomes ``PlacementFailed`` (its transaction was rolled back)."""
    started, outcome = time.monotonic(), PLACED
    try:
        future = get_pool().submit(fn, *args, **kwargs)
        try:
            return future.result(timeout=settings.ORDER_PLACEMENT_TIMEOUT_SECONDS)
        except FutureTimeout:
            # Still queued or still running: its own transaction decides; the caller may retry with
            # the same Idempotency-Key and will get that order if it was placed.
            future.cancel()
            raise Busy() from None
    except (ShopError, OrderError) as error:
        outcome = error.code
        if isinstance(error, Busy):
            BUSY_ANSWERS.inc()
        raise
    except Exception as error:
        outcome = PlacementFailed.code
        logger.exception("order placement failed in a worker")
        raise PlacementFailed() from error
    finally:
        PLACEMENT_SECONDS.labels(outcome=outcome).observe(time.monotonic() - started)
