"""The outbox: the event is part of the order's transaction, and leaves for Kafka only after it."""

import json
import threading
import time
import uuid

import pytest
from django.db import connection, transaction
from django_celery_beat.models import PeriodicTask

from notifications.delivery import outbox_event_resend
from notifications.errors import EventNotFound
from notifications.models import OutboxEvent
from notifications.outbox import outbox_publish_pending, relay
from notifications.tasks import PUBLISH_OUTBOX_TASK, publish_outbox
from notifications.tests.factories import final_order
from notifications.tests.helpers import read_topic, wait_until
from orders.errors import OrderNotFinal, OrderNotFound
from orders.models import OrderStatus
from orders.outcomes import order_outcome_record, order_outcome_resend, order_outcomes_record
from payments.models import PaymentStatus

# --- recording ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_success_event_has_the_contract_shape():
    order = final_order(status=OrderStatus.SUCCESS, language="vi")

    event = order_outcome_record(order=order)

    payload = event.payload
    # The contract's fields, and those of schema 2 (the version, refunded, the order's URL).
    assert set(payload) == {
        "schema_version",
        "event_id",
        "type",
        "occurred_at",
        "order",
        "user",
        "refunded",
        "reason",
    }
    assert (payload["schema_version"], payload["refunded"]) == (2, False)
    assert payload["event_id"] == str(event.event_id)
    assert payload["type"] == event.type == "order.succeeded"
    assert set(payload["order"]) == {"id", "transaction_id", "total", "currency", "url", "lines"}
    assert payload["order"]["url"].endswith(f"/orders/{order.pk}/")
    assert payload["order"]["id"] == order.pk
    assert payload["order"]["transaction_id"] == str(order.transaction_id)
    assert payload["order"]["total"] == "55.00"
    assert payload["order"]["currency"] == "USD"
    assert [
        (line["name"], line["quantity"], line["unit_price"], line["total"])
        for line in payload["order"]["lines"]
    ] == [
        ("Green tea", 2, "12.50", "25.00"),
        ("Teapot", 1, "30.00", "30.00"),
    ]
    assert payload["user"] == {"id": order.user_id, "email": order.user.email, "language": "vi"}
    assert payload["reason"] is None
    assert event.key == str(order.pk)
    assert event.published_at is None
    json.dumps(payload)  # what goes on the wire


@pytest.mark.django_db
def test_failure_event_carries_the_reason_in_the_shoppers_language():
    english = order_outcome_record(order=final_order(status=OrderStatus.FAILED, reason="payment_declined"))
    vietnamese = order_outcome_record(
        order=final_order(status=OrderStatus.FAILED, reason="payment_declined", language="vi")
    )

    assert english.type == "order.failed"
    reason = english.payload["reason"]
    assert (reason["code"], reason["message"], reason["happened"]) == (
        "payment_declined",
        "Your payment was declined.",
        "Your payment was declined.",
    )
    assert reason["next_steps"].startswith("You can place the order again and pay with another card")
    assert (reason["refund_note"], reason["not_charged_note"]) == ("", "Nothing was charged.")
    assert vietnamese.payload["reason"]["code"] == "payment_declined"
    assert vietnamese.payload["reason"]["message"] == "Thanh toán của bạn đã bị từ chối."


@pytest.mark.django_db
def test_refunded_late_capture_says_so_in_the_reason():
    order = final_order(
        status=OrderStatus.FAILED, reason="reservation_expired", payment_status=PaymentStatus.REFUNDED
    )

    event = order_outcome_record(order=order)

    assert event.payload["reason"]["code"] == "reservation_expired"
    assert "we refunded it in full" in event.payload["reason"]["message"]


@pytest.mark.django_db
def test_pending_order_has_no_outcome_to_record():
    order = final_order(status=OrderStatus.PENDING)

    with pytest.raises(OrderNotFinal) as caught:
        order_outcome_record(order=order)

    assert caught.value.code == "order_not_final"
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_rolled_back_outcome_leaves_no_event_and_wakes_no_relay(settings, monkeypatch):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9"
    woken = []
    monkeypatch.setattr(relay, "wake", lambda: woken.append(True))
    order = final_order(status=OrderStatus.SUCCESS)

    with pytest.raises(RuntimeError), transaction.atomic():
        order_outcome_record(order=order)
        raise RuntimeError("the checkout failed after recording")

    assert not OutboxEvent.objects.exists()
    assert woken == []

    with transaction.atomic():
        order_outcome_record(order=order)
        assert woken == []  # nothing leaves before the commit
    assert woken == [True]


@pytest.mark.django_db(transaction=True)
def test_dead_broker_never_slows_the_committing_caller(settings):
    # Nothing listens on port 9: the relay thread's connection fails, in the background.
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9"
    settings.KAFKA_PRODUCER_TIMEOUT_MS = 2000
    order = final_order(status=OrderStatus.FAILED, reason="payment_cancelled")
    runs_before = relay.runs

    started = time.monotonic()
    with transaction.atomic():
        order_outcome_record(order=order)
    elapsed = time.monotonic() - started

    assert elapsed < 1.0  # the relay gives a dead broker 2 s, in its own thread
    wait_until(lambda: relay.runs > runs_before, message="the relay thread tried")
    event = OutboxEvent.objects.get()
    assert event.published_at is None  # it waits for the sweep


# --- publishing -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_nothing_is_published_without_a_broker(settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    order_outcome_record(order=final_order())

    assert outbox_publish_pending() == 0
    assert OutboxEvent.objects.get().published_at is None


@pytest.mark.django_db
def test_unreachable_broker_leaves_the_rows_waiting(settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9"
    settings.KAFKA_PRODUCER_TIMEOUT_MS = 1000
    order_outcome_record(order=final_order())

    assert outbox_publish_pending() == 0
    assert OutboxEvent.objects.get().published_at is None


@pytest.mark.django_db
def test_publish_sends_each_row_once_keyed_by_order(kafka_settings):
    kafka_settings.OUTBOX_PUBLISH_ON_COMMIT = False
    orders = [final_order(), final_order(status=OrderStatus.FAILED, reason="gateway_error")]
    events = [order_outcome_record(order=order) for order in orders]

    assert outbox_publish_pending(batch_size=1) == 2
    assert outbox_publish_pending() == 0  # nothing left: published rows are not sent again

    records = read_topic(kafka_settings.KAFKA_EMAIL_TOPIC, count=2)
    published = sorted((record.key.decode(), json.loads(record.value)["event_id"]) for record in records)
    assert published == sorted((str(event.order_id), str(event.event_id)) for event in events)
    for event in OutboxEvent.objects.all():
        assert event.published_at is not None
        assert event.attempts == 1
        assert event.last_error == ""


@pytest.mark.django_db(transaction=True)
def test_publish_skips_rows_another_relay_holds(kafka_settings):
    kafka_settings.OUTBOX_PUBLISH_ON_COMMIT = False
    held = order_outcome_record(order=final_order())
    free = order_outcome_record(order=final_order())
    locked, release = threading.Event(), threading.Event()

    def other_relay():
        with transaction.atomic():
            OutboxEvent.objects.select_for_update().get(pk=held.pk)
            locked.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=other_relay)
    thread.start()
    try:
        assert locked.wait(10)
        assert outbox_publish_pending() == 1  # did not wait for the held row
    finally:
        release.set()
        thread.join()
    held.refresh_from_db()
    free.refresh_from_db()
    assert held.published_at is None
    assert free.published_at is not None


@pytest.mark.django_db(transaction=True)
def test_commit_wakes_the_relay_which_publishes(kafka_settings):
    order = final_order()

    with transaction.atomic():
        event = order_outcome_record(order=order)

    wait_until(lambda: OutboxEvent.objects.get(pk=event.pk).published_at is not None, message="published")
    (record,) = read_topic(kafka_settings.KAFKA_EMAIL_TOPIC, count=1)
    assert json.loads(record.value)["event_id"] == str(event.event_id)


@pytest.mark.django_db
def test_beat_schedule_exists_after_migrate():
    task = PeriodicTask.objects.get(name="notifications: publish outbox")

    assert task.task == PUBLISH_OUTBOX_TASK == "notifications.tasks.publish_outbox"
    assert task.enabled
    assert (task.interval.every, task.interval.period) == (30, "seconds")


@pytest.mark.django_db
def test_beat_task_runs_the_sweep(kafka_settings):
    kafka_settings.OUTBOX_PUBLISH_ON_COMMIT = False
    order_outcome_record(order=final_order())

    assert publish_outbox.delay().get() == 1
    assert OutboxEvent.objects.get().published_at is not None


@pytest.mark.django_db
def test_resend_of_an_order_requeues_its_latest_event(settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    order = final_order()
    event = order_outcome_record(order=order)
    OutboxEvent.objects.filter(pk=event.pk).update(published_at="2026-01-01T00:00:00Z")

    again = order_outcome_resend(order_id=order.pk)

    assert again.pk == event.pk
    again.refresh_from_db()
    assert again.published_at is None


@pytest.mark.django_db
def test_resend_of_an_order_without_event_records_one():
    order = final_order(status=OrderStatus.FAILED, reason="cancelled_by_shopper")

    event = order_outcome_resend(order_id=order.pk)

    assert event.type == "order.failed"
    assert OutboxEvent.objects.filter(order=order).count() == 1


@pytest.mark.django_db
def test_resend_refuses_pending_and_unknown_orders():
    pending = final_order(status=OrderStatus.PENDING)

    with pytest.raises(OrderNotFinal):
        order_outcome_resend(order_id=pending.pk)
    with pytest.raises(OrderNotFound):
        order_outcome_resend(order_id=pending.pk + 1000)
    with pytest.raises(EventNotFound):
        outbox_event_resend(event_id=uuid.uuid4())


@pytest.mark.django_db
def test_outcomes_of_many_orders_are_recorded_set_based(django_assert_max_num_queries):
    orders = [final_order(), final_order(status=OrderStatus.FAILED, reason="reservation_expired")]
    orders += [final_order(status=OrderStatus.FAILED, reason="reservation_expired") for _ in range(8)]

    with django_assert_max_num_queries(4):
        events = order_outcomes_record(orders=orders)

    assert [event.order_id for event in events] == [order.pk for order in orders]
    assert OutboxEvent.objects.count() == 10
    assert len({event.event_id for event in events}) == 10
    stored = OutboxEvent.objects.get(order=orders[1])
    assert stored.payload["reason"]["code"] == "reservation_expired"
    assert [line["name"] for line in stored.payload["order"]["lines"]] == ["Green tea", "Teapot"]
    assert stored.payload["user"]["email"] == orders[1].user.email


@pytest.mark.django_db
def test_a_pending_order_in_a_batch_records_nothing():
    with pytest.raises(OrderNotFinal):
        order_outcomes_record(orders=[final_order(), final_order(status=OrderStatus.PENDING)])

    assert not OutboxEvent.objects.exists()
