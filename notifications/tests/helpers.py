"""Helpers of the notifications tests: wait on conditions (never sleep-and-hope), read topics and
committed offsets, run the consumer in a thread or as a separate process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient

from notifications.consumer import EmailConsumer
from notifications.models import OutboxEvent
from notifications.outbox import outbox_publish_pending
from orders.outcomes import order_outcome_record

BASE_DIR = Path(__file__).resolve().parents[2]


def wait_until(condition, *, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message}: not met within {timeout} s")
        time.sleep(interval)


def read_topic(topic: str, *, count: int, timeout: float = 15.0) -> list:
    """The records of ``topic`` (read without a group), once ``count`` of them are there."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    records, deadline = [], time.monotonic() + timeout
    try:
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def committed_offsets(group_id: str | None = None) -> dict[int, int]:
    """Partition -> committed offset of the email topic for ``group_id`` (absent: never committed)."""
    group_id = group_id or settings.KAFKA_EMAIL_CONSUMER_GROUP
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    try:
        offsets = admin.list_group_offsets(group_id).get(group_id, {})
    finally:
        admin.close()
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if tp.topic == settings.KAFKA_EMAIL_TOPIC and meta.offset >= 0
    }


def record_outcomes(orders) -> list[OutboxEvent]:
    """Record each order's outcome as the checkout does: inside the transaction, relay on commit."""
    events = []
    for order in orders:
        with transaction.atomic():
            events.append(order_outcome_record(order=order))
    return events


def publish_all(events, *, timeout: float = 20.0) -> None:
    """Make sure every event is on the topic: the relay thread may have done it already; the sweep
    does the rest."""
    ids = [event.pk for event in events]

    def all_published():
        outbox_publish_pending()
        return not OutboxEvent.objects.filter(pk__in=ids, published_at__isnull=True).exists()

    wait_until(all_published, timeout=timeout, interval=0.2, message="all events published")


def produce_raw(messages: list[tuple[str, bytes]]) -> None:
    """Put messages on the email topic as they are (duplicates, poison), in order."""
    from notifications.kafka_client import publish

    errors = publish(topic=settings.KAFKA_EMAIL_TOPIC, messages=messages)
    assert errors == [None] * len(messages), errors


def event_bytes(event: OutboxEvent) -> bytes:
    return json.dumps(event.payload).encode()


class ConsumerThread:
    """``EmailConsumer`` in a thread of this process (its own database connection)."""

    def __init__(self, **options):
        self.consumer = EmailConsumer(**options)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.consumer.run()
        except BaseException as error:
            self.error = error
        finally:
            connection.close()

    def start(self) -> ConsumerThread:
        self.thread.start()
        return self

    def stop(self, timeout: float = 20.0):
        self.consumer.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the consumer did not stop"
        if self.error is not None:
            raise self.error

    @property
    def stats(self):
        return self.consumer.stats


def test_database_url() -> str:
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class ConsumerProcess:
    """``manage.py run_email_consumer`` as an operator runs it, on this test's database, topics and
    SMTP server (passed through the environment, with ``env`` on top). Its log lines are collected as
    they come."""

    def __init__(self, *args: str, env: dict[str, str] | None = None):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "shop.settings.base",
            "DATABASE_URL": test_database_url(),
            "KAFKA_BOOTSTRAP_SERVERS": settings.KAFKA_BOOTSTRAP_SERVERS,
            "KAFKA_EMAIL_TOPIC": settings.KAFKA_EMAIL_TOPIC,
            "KAFKA_EMAIL_DLQ_TOPIC": settings.KAFKA_EMAIL_DLQ_TOPIC,
            "KAFKA_EMAIL_CONSUMER_GROUP": settings.KAFKA_EMAIL_CONSUMER_GROUP,
            "KAFKA_SESSION_TIMEOUT_MS": str(settings.KAFKA_SESSION_TIMEOUT_MS),
            "KAFKA_MAX_POLL_INTERVAL_MS": str(settings.KAFKA_MAX_POLL_INTERVAL_MS),
            "EMAIL_URL": f"smtp://{settings.EMAIL_HOST}:{settings.EMAIL_PORT}",
            "EMAIL_TIMEOUT": "5",
            "EMAIL_RETRY_BACKOFF_SECONDS": str(settings.EMAIL_RETRY_BACKOFF_SECONDS),
            "EMAIL_RETRY_BACKOFF_MAX_SECONDS": str(settings.EMAIL_RETRY_BACKOFF_MAX_SECONDS),
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "run_email_consumer", *args],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for_line(self, text: str, *, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line with {text!r}; output:\n" + "\n".join(self.lines))
                self._changed.wait(min(left, 0.2))

    def lines_with(self, text: str) -> list[str]:
        with self._changed:
            return [line for line in self.lines if text in line]

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
