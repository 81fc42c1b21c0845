"""Health endpoints of the web role, for load balancers, containers and Kubernetes.

    GET /health/live    200 {"status": "ok"} while the process answers requests
    GET /health/ready   200 {"status": "ok", "checks": {...}} when every dependency answers,
                        503 {"status": "unavailable", "checks": {...}} when one does not

Readiness checks, each named in the body with its result and how long it took: ``database`` (a
query), ``cache`` (a write and a read), ``celery_broker`` (a connection to CELERY_BROKER_URL, so
that the expiry and outbox sweeps can be queued) and ``kafka`` (fresh metadata of KAFKA_EMAIL_TOPIC
from the brokers). A failed check says only the error's class; the log has the rest.

``HealthCheckMiddleware`` answers them first in the middleware chain: before the host name check, the
HTTPS redirect, sessions and language, so that a probe over plain HTTP to the container's own address
gets the health of the process and not a redirect or a 400.

The celery worker, beat and the email consumer serve no HTTP: their liveness is a heartbeat file
(core/heartbeat.py, checked by ``python -m shop.probe``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse

from notifications import kafka_client
from shop.celery import app

logger = logging.getLogger(__name__)

LIVE_PATH = "/health/live"
READY_PATH = "/health/ready"
# Each network check gives up after this long, so that a probe always gets an answer.
CHECK_TIMEOUT_SECONDS = 3.0


class CheckFailed(Exception):
    """A dependency answered, but not as it should (the message says how)."""


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def check_cache() -> dict:
    key, value = f"health:{uuid.uuid4().hex}", uuid.uuid4().hex
    cache.set(key, value, timeout=30)
    try:
        if cache.get(key) != value:
            raise CheckFailed("the cache did not return what was written")
    finally:
        cache.delete(key)
    return {}


def check_celery_broker() -> dict:
    timeouts = {"socket_connect_timeout": CHECK_TIMEOUT_SECONDS, "socket_timeout": CHECK_TIMEOUT_SECONDS}
    options = {**app.conf.broker_transport_options, **timeouts}
    with app.connection_for_write(transport_options=options, connect_timeout=CHECK_TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=CHECK_TIMEOUT_SECONDS)
        conn.default_channel  # noqa: B018 - opening a channel is what talks to the broker (Redis: PING)
        return {"transport": conn.transport_cls}


def check_kafka() -> dict:
    if not kafka_client.is_configured():
        raise CheckFailed("KAFKA_BOOTSTRAP_SERVERS is not set")
    partitions = kafka_client.email_topic_partitions(timeout_ms=int(CHECK_TIMEOUT_SECONDS * 1000))
    if not partitions:
        raise CheckFailed(f"the brokers have no topic {settings.KAFKA_EMAIL_TOPIC}")
    return {"topic": settings.KAFKA_EMAIL_TOPIC, "partitions": partitions}


READINESS_CHECKS: dict[str, Callable[[], dict]] = {
    "database": check_database,
    "cache": check_cache,
    "celery_broker": check_celery_broker,
    "kafka": check_kafka,
}


def _run(name: str, check: Callable[[], dict]) -> dict:
    started = time.monotonic()
    try:
        details = check()
    except Exception as error:
        logger.warning("readiness check %s failed: %s: %s", name, type(error).__name__, error)
        reason = str(error) if isinstance(error, CheckFailed) else type(error).__name__
        result = {"status": "fail", "error": reason}
    else:
        result = {"status": "ok", **details}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def health_live(request) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def health_ready(request) -> JsonResponse:
    checks = {name: _run(name, check) for name, check in READINESS_CHECKS.items()}
    ready = all(result["status"] == "ok" for result in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


class HealthCheckMiddleware:
    """Answers GET /health/live and /health/ready before any other middleware runs."""

    endpoints = {LIVE_PATH: health_live, READY_PATH: health_ready}

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        endpoint = self.endpoints.get(request.path_info.rstrip("/"))
        if endpoint is not None and request.method == "GET":
            response = endpoint(request)
            response["Cache-Control"] = "no-store"
            return response
        return self.get_response(request)
