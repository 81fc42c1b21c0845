"""Request ids (X-Request-ID) on every log line, and the text and JSON log formats (core/logs.py)."""

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from celery import shared_task
from celery.contrib.testing.worker import start_worker

from core.logs import REQUEST_ID_HEADER, request_id_bound, request_id_get
from orders.worker_pool import run_in_pool
from shop.celery import app

ROOT = Path(__file__).resolve().parents[2]
NEW_ID = re.compile(r"[0-9a-f]{32}")
logger = logging.getLogger(__name__)


def wait_for(condition, *, timeout: float = 20.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{message}: not met within {timeout} s")
        time.sleep(0.05)
    return value


# --- the header ----------------------------------------------------------------------------------


def test_a_request_without_an_id_gets_a_new_one_in_the_answer(client):
    first = client.get("/health/live")[REQUEST_ID_HEADER]
    second = client.get("/health/live")[REQUEST_ID_HEADER]
    assert NEW_ID.fullmatch(first) and NEW_ID.fullmatch(second)
    assert first != second


@pytest.mark.parametrize(
    "request_id", ["abc", "A" * 128, "7f3c-req:42/b_x.y=z", "0af7651916cd43dd8448eb211c80319c"]
)
def test_a_valid_request_id_is_kept_and_answered(client, request_id):
    assert client.get("/health/live", HTTP_X_REQUEST_ID=request_id)[REQUEST_ID_HEADER] == request_id


@pytest.mark.parametrize(
    "request_id",
    ["", "A" * 129, "has space", "tab\tid", "bell\x07", "del\x7f", "caf\u00e9", "\u00ff" * 10],
)
def test_an_id_that_is_not_short_visible_ascii_is_replaced_by_a_new_one(client, request_id):
    answered = client.get("/health/live", HTTP_X_REQUEST_ID=request_id)[REQUEST_ID_HEADER]
    assert NEW_ID.fullmatch(answered)


def test_api_answers_and_errors_carry_the_id_too(client):
    response = client.post("/api/orders/", "{", content_type="application/json", HTTP_X_REQUEST_ID="api-1")
    assert response.status_code == 401
    assert response[REQUEST_ID_HEADER] == "api-1"


# --- log lines -----------------------------------------------------------------------------------


def test_every_line_of_a_request_carries_its_id_and_none_after_it(client, log_records):
    response = client.get("/no-such-page/", HTTP_X_REQUEST_ID="page-404")
    assert response.status_code == 404
    # Django logs "Not Found" after the middleware chain returned: the id is still bound then.
    (not_found,) = log_records.matching(logger="django.request", text="Not Found: /no-such-page/")
    assert not_found.request_id == "page-404"
    assert request_id_get() is None  # the thread that served it holds no id once it is finished
    logger.info("after the request")
    (after,) = log_records.matching(logger=__name__, text="after the request")
    assert after.request_id is None


def log_and_answer(text):
    logger.info(text)
    return request_id_get()


@pytest.mark.django_db(transaction=True)
def test_the_pool_worker_logs_under_the_id_of_the_request_that_queued_the_job(settings, log_records):
    settings.ORDER_WORKERS = 1  # one worker thread runs both jobs: nothing may leak from the first
    with request_id_bound("queued-by-request"):
        assert run_in_pool(log_and_answer, "job with an id") == "queued-by-request"
    assert run_in_pool(log_and_answer, "job without an id") is None

    (with_id,) = log_records.matching(logger=__name__, text="job with an id")
    (without_id,) = log_records.matching(logger=__name__, text="job without an id")
    assert with_id.threadName == without_id.threadName
    assert with_id.threadName.startswith("order-worker-")
    assert (with_id.request_id, without_id.request_id) == ("queued-by-request", None)
    # The worker logs each job once it handed the result over.
    done = wait_for(
        lambda: (
            len(found := log_records.matching(logger="orders.worker_pool", text="log_and_answer:")) == 2
            and found
        ),
        message="both jobs logged by the worker",
    )
    assert [record.request_id for record in done] == ["queued-by-request", None]


# --- Celery --------------------------------------------------------------------------------------


@shared_task(name="shop.tests.test_logs.log_the_request_id")
def log_the_request_id(text):
    logger.info(text)


@pytest.fixture
def celery_worker():
    """A real Celery worker (a thread of this process) on the test settings' in-memory broker."""
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield
    finally:
        app.conf.task_always_eager = eager


def test_a_task_logs_under_the_id_of_the_request_that_queued_it_else_its_own_id(celery_worker, log_records):
    with request_id_bound("queued-from-a-request"):
        log_the_request_id.delay("task from a request")
    result = log_the_request_id.delay("task from nowhere")

    (from_request,) = wait_for(lambda: log_records.matching(text="task from a request"), message="first task")
    (from_nowhere,) = wait_for(lambda: log_records.matching(text="task from nowhere"), message="second task")
    assert from_request.request_id == "queued-from-a-request"
    assert from_nowhere.request_id == result.id  # a beat task's lines carry its task id
    assert from_request.threadName == from_nowhere.threadName != threading.current_thread().name


# --- formats -------------------------------------------------------------------------------------

LOGGING_PROBE = """
import logging
import django
django.setup()
from django.test import Client
from core.logs import request_id_bound

log = logging.getLogger("probe")
log.info("outside any request")
with request_id_bound("probe-42"):
    log.warning("inside %s", "a request")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("it broke")
Client().get("/no-such-page/", HTTP_X_REQUEST_ID="client-7")
"""


def run_probe(**env):
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LOG_"))}
    return subprocess.run(
        [sys.executable, "-c", LOGGING_PROBE],
        cwd=ROOT,
        env={
            **keep,
            "DJANGO_SETTINGS_MODULE": "shop.settings.local",  # DEBUG on: Django's own console handler too
            "DJANGO_ALLOWED_HOSTS": "testserver",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_log_format_json_writes_one_json_object_per_line():
    result = run_probe(LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    entries = [json.loads(line) for line in lines]  # every line, Django's included, is one object
    for entry in entries:
        assert {"time", "level", "logger", "message", "request_id"} <= set(entry)
        assert datetime.fromisoformat(entry["time"]).utcoffset().total_seconds() == 0
    by_message = {entry["message"]: entry for entry in entries}
    assert by_message["outside any request"] == {
        **by_message["outside any request"],
        "level": "INFO",
        "logger": "probe",
        "request_id": None,
    }
    assert by_message["inside a request"]["request_id"] == "probe-42"
    assert by_message["inside a request"]["level"] == "WARNING"
    assert "ZeroDivisionError" in by_message["it broke"]["exc_info"]
    not_found = by_message["Not Found: /no-such-page/"]
    assert (not_found["logger"], not_found["request_id"], not_found["status_code"]) == (
        "django.request",
        "client-7",
        404,
    )
    assert len(entries) == 4  # Django's own console handler (DEBUG) writes no second copy


def test_log_format_text_names_the_request_id_on_every_line():
    result = run_probe()
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert re.fullmatch(r"\S+ \S+ INFO probe \[-\] outside any request", lines[0])
    assert [line for line in lines if "[probe-42] inside a request" in line]
    assert [line for line in lines if "WARNING django.request [client-7] Not Found: /no-such-page/" in line]


def test_an_unknown_log_format_stops_the_process_with_a_clear_message():
    result = run_probe(LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "LOG_FORMAT is 'xml': set it to text or json." in result.stderr
