"""Prometheus metrics (prometheus-client): the web role's ``GET /metrics`` and who may read it, and the
metrics port of processes that serve their own (``run_email_consumer --metrics-port``).

The series are defined next to what they measure: ``orders/metrics.py`` (placement latency, the order
pool's queue, 503 ``busy`` answers, orders by outcome and reason) and ``notifications/metrics.py``
(the outbox backlog and its age, read from the database at each scrape; the email consumer's own).

Processes. Under runserver the values live in the process (prometheus-client's default registry).
Under gunicorn a scrape reaches one of several worker processes, so gunicorn.conf.py runs
prometheus-client's multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` (or a temporary directory it makes)
is where each process writes its values to files, and a scrape adds up every process's files.
gunicorn.conf.py empties it when gunicorn starts and drops a dead worker's live gauges
(``child_exit``). prometheus-client picks its mode when it is imported, so gunicorn's master imports
it only in its hooks, after the settings have read ``.env``.

Who may read ``/metrics``: nobody unless ``METRICS_ENABLED`` (on by default in ``shop.settings.local``
and the tests, off in ``shop.settings.production`` unless set), and then only a client whose address
is in ``METRICS_ALLOWED_IPS`` (CIDRs; by default loopback and the private ranges) and that did not come
through a proxy (no ``X-Forwarded-For`` / ``Forwarded`` header: behind a proxy on the private network,
a shopper's request would otherwise come from an allowed address). Anybody else gets the shop's plain
404, as for any unknown path. The answer is given before the host name check and the HTTPS redirect,
as the health probes are, so Prometheus can scrape the container's address over plain HTTP.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from prometheus_client import CollectorRegistry
from prometheus_client import start_http_server as _start_http_server
from prometheus_client.multiprocess import mark_process_dead

METRICS_PATH = "/metrics"
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED")


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


def multiprocess_dir_ensure() -> None:
    """Create the multiprocess directory when it is set but missing, before the first series is made
    (a ``manage.py`` command run in the web role's container, before gunicorn made it)."""
    path = multiprocess_dir()
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)


def multiprocess_dir_prepare(path: str) -> None:
    """gunicorn's ``on_starting``: create the multiprocess directory, or empty it of the files of a
    previous run (prometheus-client wants it empty when the processes start)."""
    Path(path).mkdir(parents=True, exist_ok=True)
    for stale in Path(path).glob("*.db"):
        stale.unlink(missing_ok=True)


def multiprocess_process_dead(pid: int) -> None:
    """gunicorn's ``child_exit``: a worker process is gone; its live gauges (the pool's queue depth)
    stop counting. Its counters and histograms stay: their totals must not go down."""
    mark_process_dead(pid)


@functools.lru_cache(maxsize=8)
def allowed_networks(cidrs: tuple[str, ...]) -> tuple:
    try:
        return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs if cidr.strip())
    except ValueError as error:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {error}") from error


def _client_address(request):
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return None
    return getattr(address, "ipv4_mapped", None) or address


def metrics_allowed(request) -> bool:
    if not settings.METRICS_ENABLED or any(header in request.META for header in PROXY_HEADERS):
        return False
    address = _client_address(request)
    networks = allowed_networks(tuple(settings.METRICS_ALLOWED_IPS))
    return address is not None and any(address in network for network in networks)


def metrics_serve(*, registry: CollectorRegistry, port: int, host: str = "127.0.0.1"):
    """Serve ``registry`` on http://host:port/ (any path) from a daemon thread, for a process that has
    no web server of its own; returns the server (``shutdown()`` and ``server_close()`` stop it)."""
    server, _thread = _start_http_server(port, addr=host, registry=registry)
    return server
