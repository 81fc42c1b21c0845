"""``GET /metrics`` of the web role: the series of every app, added up over gunicorn's processes.

Importing ``orders.metrics`` and ``notifications.metrics`` here makes their series exist (at zero) from
the first scrape on; who may read the page and the multiprocess mode are in ``core.metrics``.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from core.metrics import METRICS_PATH, allowed_networks, metrics_allowed, multiprocess_dir
from notifications.metrics import OutboxCollector
from orders import metrics as _orders_metrics  # noqa: F401 - defines the checkout's series


class _Chain:
    """What ``generate_latest`` reads: the series of several collectors, one after the other."""

    def __init__(self, *collectors):
        self.collectors = collectors

    def collect(self) -> Iterable:
        for collector in self.collectors:
            yield from collector.collect()


def web_metrics(accept: str = "") -> tuple[bytes, str]:
    """The web role's metrics and their content type: the Prometheus text format, or OpenMetrics when
    the ``Accept`` header asks for it."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    encoder, content_type = choose_encoder(accept)
    return encoder(_Chain(registry, OutboxCollector())), content_type


class MetricsMiddleware:
    """Answers ``GET /metrics`` to the clients allowed to read it; for anybody else, the path does not
    exist. Placed right after the health checks, before the host name check and the HTTPS redirect."""

    def __init__(self, get_response):
        self.get_response = get_response
        allowed_networks(tuple(settings.METRICS_ALLOWED_IPS))  # a wrong CIDR stops the process at start

    def __call__(self, request):
        if (
            request.path_info.rstrip("/") == METRICS_PATH
            and request.method in ("GET", "HEAD")
            and metrics_allowed(request)
        ):
            body, content_type = web_metrics(request.headers.get("Accept", ""))
            response = HttpResponse(body, content_type=content_type)
            response["Cache-Control"] = "no-store"
            return response
        return self.get_response(request)
