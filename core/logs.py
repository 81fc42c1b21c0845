"""Log lines that tell one order's story: a request id on every line, and plain text or JSON.

One id per request: the ``X-Request-ID`` header when it is a sensible id (visible ASCII, at most 128
characters), otherwise a new one (uuid4, hex). The answer carries it back in ``X-Request-ID``. It lives
in a context variable, which the logging filter ``RequestIdFilter`` copies onto every log record, so
every line logged while the request is handled carries it, and it travels on with the work the request
starts:

- the order pool (orders/worker_pool.py) captures it when a placement is queued and binds it in the
  worker thread while the placement runs;
- the outbox event of an order's outcome stores it (``OutboxEvent.request_id``), the relay logs each
  event it publishes with it, and it is sent to Kafka as the message header ``request_id``;
- the email consumer binds the header while it handles the message;
- Celery tasks get the id of the request (or task) that queued them, or their own task id
  (shop/celery.py), so the beat sweeps' lines and events carry the task id.

So ``grep <id>`` over every process's log finds what happened to one request's order.

``LOG_FORMAT=text`` (the default) writes ``time level logger [request id] message``; ``LOG_FORMAT=json``
writes one JSON object per line with the keys ``time`` (ISO 8601, UTC), ``level``, ``logger``,
``message`` and ``request_id`` (null outside a request), plus ``exc_info`` and the record's extra fields.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import request_finished
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_MAX_LENGTH = 128
# Visible ASCII (no space, no control character): an id that a grep and a log parser take as one word.
_VALID_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,%d}" % REQUEST_ID_MAX_LENGTH)  # noqa: UP031

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


# --- the request id ------------------------------------------------------------------------------


def request_id_get() -> str | None:
    """The request id of the work running in this thread (None outside a request, task or message)."""
    return _request_id.get()


def request_id_new() -> str:
    return uuid.uuid4().hex


def request_id_is_valid(value) -> bool:
    return isinstance(value, str) and _VALID_REQUEST_ID.fullmatch(value) is not None


def request_id_from(value) -> str:
    """``value`` (a header) when it is a valid request id, else a new id."""
    return value if request_id_is_valid(value) else request_id_new()


def request_id_set(value: str | None) -> contextvars.Token:
    """Bind ``value`` in this thread until ``request_id_reset(token)``; prefer ``request_id_bound``."""
    return _request_id.set(value or None)


def request_id_reset(token: contextvars.Token) -> None:
    _request_id.reset(token)


@contextmanager
def request_id_bound(value: str | None) -> Iterator[str | None]:
    """Bind ``value`` as the request id of the lines logged in this block (None: no id)."""
    token = request_id_set(value)
    try:
        yield value or None
    finally:
        request_id_reset(token)


class RequestIdMiddleware:
    """First in MIDDLEWARE: binds the request's id for everything below it and answers it back.

    The id stays bound until the response is closed (``request_finished``), not only while the
    middleware runs: Django logs a 4xx/5xx answer ("Not Found: ...", "Internal Server Error: ...")
    after the middleware chain returned, and that line belongs to the request too.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        request_id_set(request_id)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


def _forget_request_id(**kwargs) -> None:
    _request_id.set(None)


# Whatever server runs the shop: a thread that served a request holds no id once it is finished.
request_finished.connect(_forget_request_id, dispatch_uid="core.logs.forget_request_id")


# --- logging -------------------------------------------------------------------------------------


# The id a record was found to have, kept on the record so that every handler's filter (each with
# its own ``empty``) agrees on it; not a field of the JSON lines.
_RESOLVED = "shop_request_id"


class RequestIdFilter(logging.Filter):
    """Gives every record a ``request_id``: its own (``extra={"request_id": ...}``), else the one bound
    in the thread that logs it, else ``empty``. It never drops a record."""

    def __init__(self, name: str = "", empty: str | None = "-"):
        super().__init__(name)
        self.empty = empty

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, _RESOLVED):
            setattr(record, _RESOLVED, getattr(record, "request_id", None) or _request_id.get())
        record.request_id = getattr(record, _RESOLVED) or self.empty
        return True


def json_formatter() -> JsonFormatter:
    """One JSON object per line: time, level, logger, message, request_id (and extras, exc_info)."""
    return JsonFormatter(
        ["levelname", "name", "message", "request_id"],
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        reserved_attrs=[*RESERVED_ATTRS, _RESOLVED],
    )


def logging_config(*, log_format: str, level: str) -> dict:
    """The LOGGING setting: every logger, Django's and Celery's included, writes to one console handler
    in ``log_format`` (``text`` or ``json``) with the request id on every line."""
    if log_format not in LOG_FORMATS:
        raise ImproperlyConfigured(f"LOG_FORMAT is {log_format!r}: set it to text or json.")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": RequestIdFilter, "empty": None if log_format == "json" else "-"},
        },
        "formatters": {
            "text": {"format": TEXT_FORMAT},
            "json": {"()": json_formatter},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": log_format, "filters": ["request_id"]},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's default configuration gives these handlers of their own (another format):
            # everything goes through the one console handler instead.
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            "django.server": {"handlers": [], "level": "INFO", "propagate": True},
            "kafka": {"level": "WARNING"},
            "django.db.backends": {"level": "WARNING"},
        },
    }


def gunicorn_logging_config(logging_setting: dict) -> dict:
    """gunicorn's ``logconfig_dict``: its error and access logs through the shop's console handler,
    in the same format (and, for an access line, with the request's id)."""
    config = copy.deepcopy(logging_setting)
    for name in ("gunicorn.error", "gunicorn.access"):
        config["loggers"][name] = {"handlers": ["console"], "level": "INFO", "propagate": False}
    return config
