"""gunicorn's configuration for the shop's web role: ``gunicorn --config gunicorn.conf.py``.

The Dockerfile, the Procfile and docker-compose.yml all start the web process with this file.

Threaded workers (``gthread``): each process serves up to ``threads`` requests at once, so the order
pool of that process (``ORDER_WORKERS`` threads and a queue of ``ORDER_QUEUE_SIZE``, orders/worker_pool.py)
is fed by concurrent placements, and once more than ORDER_WORKERS + ORDER_QUEUE_SIZE of them wait in
one process the next one gets 503 ``busy`` at once. With sync workers (one request per process) the
queue never fills and that answer cannot happen. The default thread count is therefore the pool's
size plus its queue plus a few threads for everything else (pages, webhooks, health probes).

Settings come from the environment, through the Django settings where the shop has one:

    PORT                port to listen on, on every interface (default 8000)
    WEB_CONCURRENCY     worker processes (default 2); each has its own order pool
    GUNICORN_THREADS    threads per process (default ORDER_WORKERS + ORDER_QUEUE_SIZE + 4)
    PROMETHEUS_MULTIPROC_DIR  where the worker processes keep their Prometheus values (default: a
                        temporary directory of this gunicorn, removed when it stops)

Logs: gunicorn's own lines go through the shop's LOGGING (LOG_FORMAT, text or JSON); an access line
ends with the request's X-Request-ID. Metrics: the worker processes always share their Prometheus
values through files in one directory (prometheus-client's multiprocess mode, core/metrics.py), so a
scrape of /metrics, whichever process answers it, adds up all of them, and a worker that was replaced
(killed, restarted) takes none of its counts away. The directory is emptied when gunicorn starts, and
a worker that exits stops counting in the live gauges (``child_exit``).

Timeouts: a placement request waits up to ORDER_PLACEMENT_TIMEOUT_SECONDS for the pool, then makes
up to two PayPal calls (a token and the order) of PAYPAL_TIMEOUT_SECONDS each. ``timeout`` (a silent
worker is killed) and ``graceful_timeout`` (how long SIGTERM lets in-flight requests finish) are
both above that sum, so a deploy or a scale-down lets every placement already accepted finish; the
pool is then shut down after the jobs it holds (``worker_exit``). Whatever stops the container must
wait longer than ``graceful_timeout`` before SIGKILL (compose: ``stop_grace_period``).
"""

import os
import shutil
import tempfile

from django.conf import settings

# Not core.metrics here: prometheus-client must be imported after the settings read .env, where
# PROMETHEUS_MULTIPROC_DIR may be set (it picks its mode when it is imported).
from core import logs

# Read on first use of ``settings`` below; the same default as shop/wsgi.py.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings.local")

# Threads a process keeps beside the placements the pool can hold, for every other request.
SPARE_THREADS = 4

wsgi_app = "shop.wsgi:application"
bind = [f"0.0.0.0:{os.environ.get('PORT', '8000')}"]
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
threads = int(
    os.environ.get("GUNICORN_THREADS") or settings.ORDER_WORKERS + settings.ORDER_QUEUE_SIZE + SPARE_THREADS
)

_longest_request = settings.ORDER_PLACEMENT_TIMEOUT_SECONDS + 2 * settings.PAYPAL_TIMEOUT_SECONDS
timeout = int(_longest_request) + 15
graceful_timeout = timeout
# Behind a load balancer or proxy that keeps connections open.
keepalive = 5

accesslog = "-"
errorlog = "-"
# gunicorn's default format, then the request id the shop answered with (core/logs.py).
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %({x-request-id}o)s'
logconfig_dict = logs.gunicorn_logging_config(settings.LOGGING)
# gunicorn's control socket lives under $HOME by default, shared by every gunicorn of the user (and
# not writable in the image): the shop does not use it.
control_socket_disable = True


def on_starting(server):
    # In the master, before any worker exists, and before anything imports prometheus-client (it picks
    # its mode when imported): the workers inherit the variable. (Tests that read this file run no hook.)
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not multiproc_dir:
        multiproc_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="shop-prometheus-")
        server.shop_temporary_metrics_dir = multiproc_dir
    from core.metrics import multiprocess_dir_prepare

    multiprocess_dir_prepare(multiproc_dir)
    server.log.info("metrics: prometheus-client multiprocess mode in %s", multiproc_dir)
    pool = settings.ORDER_WORKERS + settings.ORDER_QUEUE_SIZE
    server.log.info(
        "web: %s processes x %s threads; each process has an order pool of %s workers and a queue of %s",
        server.cfg.workers,
        server.cfg.threads,
        settings.ORDER_WORKERS,
        settings.ORDER_QUEUE_SIZE,
    )
    if server.cfg.threads <= pool:
        server.log.warning(
            "GUNICORN_THREADS=%s is not above ORDER_WORKERS + ORDER_QUEUE_SIZE = %s: the order queue can "
            "never fill, so a rush waits in gunicorn instead of getting 503 busy",
            server.cfg.threads,
            pool,
        )


def worker_exit(server, worker):
    # In the worker, after its in-flight requests finished (or graceful_timeout ran out).
    from orders.worker_pool import pool_shutdown

    pool_shutdown()


def child_exit(server, worker):
    # In the master, once a worker process is gone (however it ended).
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from core.metrics import multiprocess_process_dead

        multiprocess_process_dead(worker.pid)


def on_exit(server):
    temporary = getattr(server, "shop_temporary_metrics_dir", None)
    if temporary:
        shutil.rmtree(temporary, ignore_errors=True)
