"""One request id tells one order's story in every process's log (issue 14): the web request that
placed and cancelled it, the order pool's worker that placed it, the relay that published its outcome
event, and the email consumer (a separate process, logging JSON) that mailed it; a dead letter keeps it."""

import json

import pytest
from django.conf import settings
from django.core.management import call_command
from rest_framework.test import APIClient

from core.logs import REQUEST_ID_HEADER, request_id_bound
from inventory.tests.factories import ProductFactory
from notifications.dlq import dlq_list, dlq_replay
from notifications.models import OutboxEvent
from notifications.tests.factories import final_order
from notifications.tests.helpers import ConsumerProcess, publish_all, read_topic, record_outcomes, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

REQUEST_ID = "story-7d1e0c2a"


def test_one_request_id_is_on_the_web_worker_relay_and_consumer_lines_of_one_order(
    email_pipeline, smtp_server, paypal, user, log_records
):
    mug = ProductFactory(on_hand=3)
    client = APIClient()
    client.force_authenticate(user)
    header = {"HTTP_X_REQUEST_ID": REQUEST_ID}

    placed = client.post(
        "/api/orders/", {"lines": [{"product": mug.pk, "quantity": 1}]}, format="json", **header
    )
    assert placed.status_code == 201, placed.json()
    assert placed[REQUEST_ID_HEADER] == REQUEST_ID
    order_id = placed.json()["id"]
    assert client.post(f"/api/orders/{order_id}/cancel/", **header).status_code == 200
    assert client.post(f"/api/orders/{order_id}/cancel/", **header).status_code == 409  # Django logs it

    event = OutboxEvent.objects.get(order_id=order_id)
    assert event.request_id == REQUEST_ID
    publish_all([event])
    (message,) = read_topic(settings.KAFKA_EMAIL_TOPIC, count=1)
    assert ("request_id", REQUEST_ID.encode()) in message.headers, message.headers

    consumer = ConsumerProcess("--max-messages", "1", env={"LOG_FORMAT": "json"})
    try:
        assert consumer.wait(timeout=90) == 0, "\n".join(consumer.lines)
    finally:
        consumer.kill()
    (email,) = smtp_server.wait_for(1)
    assert email["X-Shop-Event-Id"] == str(event.event_id)

    # web: the request thread (Django's warning about the refused second cancel)
    (web,) = log_records.matching(logger="django.request", text=f"Conflict: /api/orders/{order_id}/cancel/")
    # the order pool's worker thread that placed it
    (worker,) = wait_until(
        lambda: log_records.matching(logger="orders.worker_pool", text=f"order_place: order {order_id} "),
        message="the pool worker's line",
    )
    assert worker.threadName.startswith("order-worker-")
    # the relay (its thread, or the sweep) that published the event
    (relay,) = log_records.matching(logger="notifications.outbox", text=f"published event {event.event_id}")
    assert [line.request_id for line in (web, worker, relay)] == [REQUEST_ID] * 3

    # the consumer process: every JSON line about this event carries the id
    entries = [json.loads(line) for line in consumer.lines if line.startswith("{")]
    about_the_event = [entry for entry in entries if f"event={event.event_id}" in entry["message"]]
    assert len(about_the_event) == 1 and "outcome=sent" in about_the_event[0]["message"]
    assert {entry["request_id"] for entry in about_the_event} == {REQUEST_ID}
    assert about_the_event[0]["logger"] == "notifications.consumer"


def test_a_dead_letter_keeps_the_request_id_and_its_replay_sends_it_again(
    email_pipeline, smtp_server, log_records
):
    order = final_order()
    smtp_server.refusals[order.user.email] = "550 5.1.1 No such mailbox"
    with request_id_bound("refused-9"):
        (event,) = record_outcomes([order])
    publish_all([event])
    call_command("run_email_consumer", max_messages=1, idle_timeout=15)
    (letter,) = dlq_list()
    assert (letter.event_id, letter.request_id) == (str(event.event_id), "refused-9")
    (dead,) = log_records.matching(logger="notifications.consumer", text="outcome=dead_lettered")
    assert dead.request_id == "refused-9"

    del smtp_server.refusals[order.user.email]
    dlq_replay(event_ids={str(event.event_id)})
    call_command("run_email_consumer", max_messages=1, idle_timeout=15)
    assert smtp_server.event_counts() == {str(event.event_id): 1}
    (sent,) = log_records.matching(logger="notifications.consumer", text="outcome=sent")
    assert sent.request_id == "refused-9"
