"""The order pool's shutdown, as gunicorn's worker_exit hook calls it (gunicorn.conf.py)."""

import threading

from orders import worker_pool


def test_pool_shutdown_runs_the_queued_jobs_before_it_returns(settings):
    settings.ORDER_WORKERS = 1
    settings.ORDER_QUEUE_SIZE = 3
    pool = worker_pool.get_pool()
    started, release = threading.Event(), threading.Event()
    done = []

    def slow():
        started.set()
        release.wait(10)
        done.append("slow")
        return "slow"

    futures = [pool.submit(slow), pool.submit(done.append, "second"), pool.submit(done.append, "third")]
    assert started.wait(10)
    stopper = threading.Thread(target=worker_pool.pool_shutdown)
    stopper.start()
    stopper.join(0.3)
    assert stopper.is_alive(), "shutdown returned while a job was still running"

    release.set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert done == ["slow", "second", "third"]
    assert [future.result(0) for future in futures] == ["slow", None, None]
    assert not any(thread.is_alive() for thread in pool._threads)
    # The process may go on (tests, runserver): the next placement gets a new pool.
    assert worker_pool.get_pool() is not pool
    worker_pool.pool_shutdown()


def test_pool_shutdown_without_a_pool_does_nothing():
    worker_pool.pool_shutdown()
    worker_pool.pool_shutdown()


def _health_checks(monkeypatch, *, jobs: int) -> list[bool]:
    """Run ``jobs`` one after another on a pool of one worker whose connection is kept and health-checked
    (production's CONN_MAX_AGE and CONN_HEALTH_CHECKS); for each health check made, whether it was made
    inside a transaction."""
    from django.db import connection, connections, transaction
    from django.db.backends.postgresql.base import DatabaseWrapper
    from psycopg2.extensions import TRANSACTION_STATUS_IDLE

    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 60)
    monkeypatch.setitem(connections.settings["default"], "CONN_HEALTH_CHECKS", True)
    checks = []
    is_usable = DatabaseWrapper.is_usable

    def counted(self):
        checks.append(self.connection.get_transaction_status() != TRANSACTION_STATUS_IDLE)
        return is_usable(self)

    def job():  # a transaction, as a placement is
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT 2")

    monkeypatch.setattr(DatabaseWrapper, "is_usable", counted)
    pool = worker_pool.WorkerPool(workers=1, queue_size=1, name="health-check-test")
    try:
        for _ in range(jobs):
            pool.submit(job).result(10)
    finally:
        pool.shutdown()
    return checks


def test_a_connection_that_just_answered_a_job_is_not_health_checked_again(monkeypatch, db):
    # The first job opens the connection (new: nothing to check); the next ones follow at once.
    assert _health_checks(monkeypatch, jobs=4) == []


def test_an_idle_connection_is_health_checked_once_per_job_outside_its_transaction(monkeypatch, db):
    monkeypatch.setattr(worker_pool, "HEALTH_CHECK_IDLE_SECONDS", 0.0)
    assert _health_checks(monkeypatch, jobs=4) == [False, False, False]
