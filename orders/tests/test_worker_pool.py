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
