"""The outbox's series on the web role's /metrics, and the email consumer's own metrics port."""

import signal
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from notifications.kafka_broker import free_port
from notifications.models import OutboxEvent
from notifications.tests.factories import final_order
from notifications.tests.helpers import (
    ConsumerProcess,
    event_bytes,
    produce_raw,
    publish_all,
    record_outcomes,
    wait_until,
)
from notifications.tests.test_consumer import partition_of
from tests.metrics import parse_metrics, scrape

pytestmark = pytest.mark.django_db(transaction=True)


# --- the outbox (web) ----------------------------------------------------------------------------


def test_the_outbox_backlog_and_its_age_are_read_from_the_database_at_each_scrape(settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = ""  # nothing is published: the events wait
    metrics = Client()
    assert scrape(metrics).value("shop_outbox_backlog") == 0
    old, new, published = record_outcomes([final_order() for _ in range(3)])
    OutboxEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    OutboxEvent.objects.filter(pk=published.pk).update(
        created_at=timezone.now() - timedelta(hours=1), published_at=timezone.now()
    )

    samples = scrape(metrics)
    assert samples.value("shop_outbox_backlog") == 2
    assert 600 <= samples.value("shop_outbox_oldest_unpublished_age_seconds") < 700

    OutboxEvent.objects.filter(pk__in=[old.pk, new.pk]).update(published_at=timezone.now())
    samples = scrape(metrics)
    assert (
        samples.value("shop_outbox_backlog"),
        samples.value("shop_outbox_oldest_unpublished_age_seconds"),
    ) == (
        0,
        0,
    )


def test_a_scrape_without_the_database_answers_the_other_series(monkeypatch, log_records):
    def database_away(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(OutboxEvent.objects, "filter", database_away)
    samples = scrape(Client())
    assert "shop_orders_total" in samples.names()
    assert "shop_outbox_backlog" not in samples.names()
    assert log_records.matching(logger="notifications.metrics", text="the outbox backlog could not be read")


# --- the email consumer's metrics port ----------------------------------------------------------------


def consumer_metrics(port: int):
    try:
        response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    except requests.ConnectionError:
        return None
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse_metrics(response.text)


def lag_by_partition(samples) -> dict[int, float]:
    return {
        int(dict(labels)["partition"]): value
        for (name, labels), value in samples.items()
        if name == "shop_email_consumer_lag" and dict(labels)["topic"] == settings.KAFKA_EMAIL_TOPIC
    }


def test_the_consumer_serves_its_metrics_and_counts_what_it_handled(email_pipeline, smtp_server):
    (event,) = record_outcomes([final_order()])
    partition = partition_of(event.order_id)
    publish_all([event])
    # The same event three more times in its partition (one batch), then a poison message.
    produce_raw([(event.key, event_bytes(event))] * 3 + [(event.key, b"not json")])
    smtp_server.hold_rcpt(after_messages=0)  # the first email waits at RCPT: the rest wait behind it
    port = free_port("127.0.0.1")
    process = ConsumerProcess("--metrics-port", str(port), "--idle-timeout", "60")
    try:
        wait_until(smtp_server.holding.is_set, timeout=60, message="the consumer is sending the email")
        held = wait_until(lambda: consumer_metrics(port), message="the metrics port answers")
        # The four messages behind the one being sent (the high watermark of the fetch, which the
        # bundled broker gets right for a batch); the other partitions (once fetched from) are empty.
        lags = lag_by_partition(held)
        assert lags == {**dict.fromkeys(lags, 0), partition: 4}
        assert held.value("shop_email_messages_total", outcome="sent") == 0
        smtp_server.release()

        def all_handled():
            samples = consumer_metrics(port)
            return (
                samples if samples.value("shop_email_messages_total", outcome="dead_lettered") == 1 else None
            )

        done = wait_until(all_handled, timeout=60, message="every message handled")
        assert done.value("shop_email_messages_total", outcome="sent") == 1
        assert done.value("shop_email_messages_total", outcome="duplicate") == 3
        assert done.value("shop_email_messages_total", outcome="retried") == 0
        assert done.value("shop_email_send_seconds_count") == 1
        assert done.value("shop_email_send_seconds_sum") > 0
        assert lag_by_partition(done) == dict.fromkeys(lag_by_partition(done), 0)
        assert partition in lag_by_partition(done)
        assert done.value("process_resident_memory_bytes") > 0
        process.signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, "\n".join(process.lines)
    finally:
        smtp_server.release()
        process.kill()
    assert consumer_metrics(port) is None  # the port closes with the process
    assert len(smtp_server.messages) == 1
    assert process.lines_with(f"email consumer metrics on http://127.0.0.1:{port}/metrics")
