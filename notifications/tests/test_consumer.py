"""The email consumer end to end: the real bundled Kafka broker, a real SMTP server, PostgreSQL."""

import json
import signal
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from kafka.partitioner.default import murmur2

from notifications.delivery import email_delivery_resend
from notifications.models import DeliveryStatus, EmailDelivery, OutboxEvent
from notifications.tests.factories import final_order
from notifications.tests.helpers import (
    ConsumerProcess,
    ConsumerThread,
    committed_offsets,
    event_bytes,
    produce_raw,
    publish_all,
    read_topic,
    record_outcomes,
    wait_until,
)
from orders.models import OrderStatus

pytestmark = pytest.mark.django_db(transaction=True)


def consume(*, max_messages: int, idle_timeout: float = 15.0) -> str:
    """Run ``manage.py run_email_consumer`` in this process until it handled ``max_messages``."""
    out = StringIO()
    call_command("run_email_consumer", max_messages=max_messages, idle_timeout=idle_timeout, stdout=out)
    return out.getvalue()


def partition_of(order_id: int, partitions: int = 3) -> int:
    """The partition the producer's default partitioner picks for this order's key."""
    return (murmur2(str(order_id).encode()) & 0x7FFFFFFF) % partitions


def subject(message) -> str:
    # A long non-ASCII subject is folded into encoded words; the parsed value keeps the fold's space.
    return str(message["Subject"]).strip()


def parts(message) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in message.walk() if not part.is_multipart()}


# --- content ---------------------------------------------------------------------------------------


EXPECTED = {
    "en": {
        "succeeded_subject": "Order #{id} is confirmed: thank you for your payment",
        "succeeded_text": "Thank you: we received your payment for order #{id}",
        "failed_subject": "Order #{id} could not be completed",
        "reason": "Your payment was declined.",
        "next_steps": "You can place the order again and pay with another card",
        "total": "Total: 55.00 USD",
    },
    "vi": {
        "succeeded_subject": "Đơn hàng #{id} đã được xác nhận: cảm ơn bạn đã thanh toán",
        "succeeded_text": "Cảm ơn bạn: chúng tôi đã nhận được thanh toán cho đơn hàng #{id}",
        "failed_subject": "Không thể hoàn tất đơn hàng #{id}",
        "reason": "Thanh toán của bạn đã bị từ chối.",
        "next_steps": "Bạn có thể đặt lại đơn hàng và thanh toán bằng thẻ",
        "total": "Tổng cộng: 55.00 USD",
    },
}


@pytest.mark.parametrize("language", ["en", "vi"])
def test_success_and_failure_each_give_one_email_in_the_shoppers_language(
    email_pipeline, smtp_server, language
):
    expected = EXPECTED[language]
    paid = final_order(status=OrderStatus.SUCCESS, language=language)
    declined = final_order(status=OrderStatus.FAILED, reason="payment_declined", language=language)
    events = record_outcomes([paid, declined])
    publish_all(events)

    output = consume(max_messages=2)

    assert "handled 2 messages: 2 sent" in output
    messages = {message["X-Shop-Order-Id"]: message for message in smtp_server.wait_for(2)}
    assert len(smtp_server.messages) == 2
    success, failure = messages[str(paid.pk)], messages[str(declined.pk)]

    assert subject(success) == expected["succeeded_subject"].format(id=paid.pk)
    assert success["To"] == paid.user.email
    assert success["Content-Language"] == language
    assert success.get_content_type() == "multipart/alternative"
    success_parts = parts(success)
    assert set(success_parts) == {"text/plain", "text/html"}
    for body in success_parts.values():
        assert expected["succeeded_text"].format(id=paid.pk) in body
        assert "Green tea" in body and "Teapot" in body
        assert "55.00 USD" in body
        assert str(paid.transaction_id) in body
        assert f"/orders/{paid.pk}/" in body
    assert expected["total"] in success_parts["text/plain"]
    assert "<table" in success_parts["text/html"]

    assert subject(failure) == expected["failed_subject"].format(id=declined.pk)
    failure_parts = parts(failure)
    assert set(failure_parts) == {"text/plain", "text/html"}
    for body in failure_parts.values():
        assert expected["reason"] in body
        assert expected["next_steps"] in body
        assert "Green tea" in body
    assert "refund" not in failure_parts["text/plain"].lower()

    deliveries = EmailDelivery.objects.order_by("order_id")
    assert [(d.order_id, d.status, d.language, d.attempts) for d in deliveries] == [
        (paid.pk, DeliveryStatus.SENT, language, 1),
        (declined.pk, DeliveryStatus.SENT, language, 1),
    ]
    assert {d.event_id for d in deliveries} == {event.event_id for event in events}


def test_refunded_late_capture_email_says_the_money_was_refunded(email_pipeline, smtp_server):
    order = final_order(
        status=OrderStatus.FAILED, reason="reservation_expired", payment_status="REFUNDED", language="vi"
    )
    publish_all(record_outcomes([order]))

    consume(max_messages=1)

    (message,) = smtp_server.wait_for(1)
    assert (
        subject(message)
        == f"Không thể hoàn tất đơn hàng #{order.pk}: khoản thanh toán của bạn đã được hoàn lại"
    )
    text = parts(message)["text/plain"]
    assert "chúng tôi đã hoàn lại toàn bộ số tiền" in text
    assert "Bạn chưa bị trừ tiền" not in text  # the generic "nothing was charged" would be wrong here


# --- at-least-once, once ------------------------------------------------------------------------


def test_duplicated_message_gives_one_email(email_pipeline, smtp_server):
    order = final_order()
    (event,) = record_outcomes([order])
    publish_all([event])
    produce_raw([(event.key, event_bytes(event))])  # Kafka hands it over a second time

    output = consume(max_messages=2)

    assert "handled 2 messages: 1 sent, 1 duplicates" in output
    smtp_server.wait_for(1)
    assert smtp_server.event_counts() == {str(event.event_id): 1}
    assert EmailDelivery.objects.get().status == DeliveryStatus.SENT


def test_poison_messages_go_to_the_dead_letter_topic_and_the_consumer_goes_on(email_pipeline, smtp_server):
    order = final_order()
    (event,) = record_outcomes([order])
    unknown_type = dict(event.payload, event_id="8b0b1f44-83ab-4a3c-9d1e-0d2bd1b0f001", type="order.shipped")
    unknown_order = dict(event.payload, event_id="8b0b1f44-83ab-4a3c-9d1e-0d2bd1b0f002")
    unknown_order["order"] = dict(event.payload["order"], id=order.pk + 100_000)
    # One key: one partition, in this order, the good event last.
    produce_raw(
        [
            (event.key, b"{not json"),
            (event.key, json.dumps(unknown_type).encode()),
            (event.key, json.dumps(unknown_order).encode()),
        ]
    )
    OutboxEvent.objects.filter(pk=event.pk).update(published_at=None)
    publish_all([event])

    output = consume(max_messages=4)

    assert "handled 4 messages: 1 sent, 0 duplicates, 0 skipped, 3 dead-lettered" in output
    smtp_server.wait_for(1)
    assert smtp_server.event_counts() == {str(event.event_id): 1}
    dead = [json.loads(record.value) for record in read_topic(email_pipeline.KAFKA_EMAIL_DLQ_TOPIC, count=3)]
    assert [letter["error"]["code"] for letter in sorted(dead, key=lambda d: d["source"]["offset"])] == [
        "invalid_message",
        "unknown_event_type",
        "unknown_order",
    ]
    assert dead[0]["source"]["topic"] == email_pipeline.KAFKA_EMAIL_TOPIC
    assert {letter["source"]["key"] for letter in dead} == {event.key}
    assert any(letter["value"] == "{not json" for letter in dead)
    assert committed_offsets()  # every one of them was committed: none comes back


def test_refused_email_is_retried_then_dead_lettered_and_staff_can_resend_it(email_pipeline, smtp_server):
    email_pipeline.EMAIL_MAX_ATTEMPTS = 3
    busy = final_order()
    unknown = final_order()
    smtp_server.refusals[busy.user.email] = "451 4.3.0 Mailbox busy, try again later"
    smtp_server.refusals[unknown.user.email] = "550 5.1.1 No such user"
    events = record_outcomes([busy, unknown])
    publish_all(events)

    output = consume(max_messages=2)

    assert "2 dead-lettered" in output
    assert smtp_server.messages == []
    temporary = EmailDelivery.objects.get(order=busy)
    permanent = EmailDelivery.objects.get(order=unknown)
    assert (temporary.status, temporary.attempts) == (DeliveryStatus.FAILED, 3)  # bounded retries
    assert "451" in temporary.last_error
    assert (permanent.status, permanent.attempts) == (DeliveryStatus.FAILED, 1)  # at once
    assert "550" in permanent.last_error
    dead = [json.loads(record.value) for record in read_topic(email_pipeline.KAFKA_EMAIL_DLQ_TOPIC, count=2)]
    assert sorted(letter["error"]["code"] for letter in dead) == ["email_undeliverable"] * 2

    # The mailbox is fine again: staff resend from the admin (the service behind the action).
    del smtp_server.refusals[busy.user.email]
    email_delivery_resend(delivery_id=temporary.pk)
    publish_all(events)
    consume(max_messages=1)

    (message,) = smtp_server.wait_for(1)
    assert message["X-Shop-Event-Id"] == str(temporary.event_id)
    temporary.refresh_from_db()
    assert (temporary.status, temporary.attempts, temporary.last_error) == (DeliveryStatus.SENT, 1, "")


# --- failures of the mail server and of the broker ---------------------------------------------------


def test_smtp_server_down_commits_nothing_past_unsent_mail(email_pipeline, smtp_server):
    smtp_server.stop()
    events = record_outcomes([final_order() for _ in range(3)])
    publish_all(events)
    consumer = ConsumerThread().start()
    try:
        # The head message of each partition tried again and again; none given up, none skipped.
        wait_until(
            lambda: (
                consumer.stats.retries >= 6
                and EmailDelivery.objects.filter(last_error__icontains="refused").exists()
            ),
            message="emails tried while the server is down",
        )
        assert committed_offsets() == {}
        assert consumer.stats.handled == 0
        assert set(EmailDelivery.objects.values_list("status", "attempts")) == {(DeliveryStatus.PENDING, 0)}

        smtp_server.start()

        smtp_server.wait_for(3)
        wait_until(lambda: sum(committed_offsets().values()) == 3, message="offsets committed")
    finally:
        consumer.stop()
    assert smtp_server.event_counts() == {str(event.event_id): 1 for event in events}
    assert consumer.stats.sent == 3
    assert set(EmailDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}


def test_broker_down_while_orders_complete_checkout_succeeds_and_every_email_arrives_once(
    kafka_settings, smtp_settings, smtp_server
):
    from notifications.kafka_broker import BundledKafkaBroker
    from notifications.kafka_client import ensure_topics
    from notifications.tasks import publish_outbox
    from orders.services import order_complete, order_fail

    topics = [kafka_settings.KAFKA_EMAIL_TOPIC, kafka_settings.KAFKA_EMAIL_DLQ_TOPIC]
    broker = BundledKafkaBroker()  # its own broker, on a fixed port, to stop and start again
    broker.start(topics)
    kafka_settings.KAFKA_BOOTSTRAP_SERVERS = broker.bootstrap_servers
    kafka_settings.KAFKA_PRODUCER_TIMEOUT_MS = 2000
    try:
        broker.stop()
        pending = [final_order(status=OrderStatus.PENDING) for _ in range(3)]

        durations = []
        for order in pending[:2]:
            started = time.monotonic()
            order_complete(order_id=order.pk, capture_id=f"CAPTURE-{order.pk}")
            durations.append(time.monotonic() - started)
        started = time.monotonic()
        order_fail(order_id=pending[2].pk, reason="payment_declined")
        durations.append(time.monotonic() - started)

        assert max(durations) < 1.0, durations  # nobody waited the 2 s the producer gives a dead broker
        for order in pending:
            order.refresh_from_db()
        assert [order.status for order in pending] == ["SUCCESS", "SUCCESS", "FAILED"]
        events = list(OutboxEvent.objects.order_by("id"))
        assert [event.order_id for event in events] == [order.pk for order in pending]
        assert publish_outbox.delay().get() == 0  # the sweep too: the rows wait
        assert not OutboxEvent.objects.filter(published_at__isnull=False).exists()

        broker.start()  # in-memory broker: it comes back empty
        ensure_topics(broker.bootstrap_servers, topics)
        wait_until(
            lambda: (
                publish_outbox.delay().get() is not None
                and not OutboxEvent.objects.filter(published_at__isnull=True).exists()
            ),
            interval=0.5,
            message="the sweep published the outbox",
        )

        consume(max_messages=3)
    finally:
        broker.stop()

    smtp_server.wait_for(3)
    assert smtp_server.event_counts() == {str(event.event_id): 1 for event in events}
    subjects = sorted(subject(message) for message in smtp_server.messages)
    assert subjects == sorted(
        [
            f"Order #{pending[0].pk} is confirmed: thank you for your payment",
            f"Order #{pending[1].pk} is confirmed: thank you for your payment",
            f"Order #{pending[2].pk} could not be completed",
        ]
    )


# --- the consumer process -------------------------------------------------------------------------


def test_consumer_killed_mid_send_and_started_again_mails_every_event_once(email_pipeline, smtp_server):
    events = record_outcomes([final_order() for _ in range(6)])
    publish_all(events)
    smtp_server.hold_rcpt(after_messages=2)  # the third email's session waits at RCPT TO

    first = ConsumerProcess()
    try:
        wait_until(smtp_server.holding.is_set, timeout=30, message="the consumer is sending the third email")
        first.kill()  # SIGKILL: no cleanup, its transaction and its group membership just vanish
    finally:
        first.kill()
        smtp_server.release()
    assert first.process.returncode == -signal.SIGKILL
    assert len(smtp_server.messages) == 2

    second = ConsumerProcess("--idle-timeout", "3")
    assert second.wait(timeout=60) == 0, "\n".join(second.lines)

    assert smtp_server.event_counts() == {str(event.event_id): 1 for event in events}
    assert set(EmailDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}
    assert EmailDelivery.objects.count() == 6
    assert sum(committed_offsets().values()) == 6
    # One log line per message handled by the second process.
    assert len(second.lines_with("email message partition=")) >= 4


def test_sigterm_finishes_the_current_message_commits_and_exits_0(email_pipeline, smtp_server):
    events = record_outcomes([final_order() for _ in range(3)])
    publish_all(events)
    smtp_server.hold_rcpt(after_messages=0)

    process = ConsumerProcess()
    try:
        wait_until(smtp_server.holding.is_set, timeout=30, message="the consumer is sending an email")
        process.signal(signal.SIGTERM)
        process.wait_for_line("stop requested (SIGTERM)")
        assert process.process.poll() is None  # the message in hand is not cut short
        smtp_server.release()
        code = process.wait(timeout=30)
    finally:
        process.kill()

    assert code == 0, "\n".join(process.lines)
    (message,) = smtp_server.wait_for(1)
    sent = EmailDelivery.objects.get(status=DeliveryStatus.SENT)
    assert message["X-Shop-Event-Id"] == str(sent.event_id)
    assert sum(committed_offsets().values()) == 1  # committed before leaving
    assert len(process.lines_with("outcome=sent")) == 1
    assert process.lines_with("handled 1 messages: 1 sent")


def test_two_consumers_in_one_group_share_the_partitions_and_mail_each_event_once(
    email_pipeline, smtp_server
):
    first = ConsumerThread(client_id="email-sender-1").start()
    second = ConsumerThread(client_id="email-sender-2").start()
    try:
        wait_until(
            lambda: (
                first.consumer.assignment
                and second.consumer.assignment
                and len(first.consumer.assignment | second.consumer.assignment) == 3
            ),
            timeout=30,
            message="both consumers hold partitions",
        )
        assert not first.consumer.assignment & second.consumer.assignment
        orders = [final_order() for _ in range(9)]
        while len({partition_of(order.pk) for order in orders}) < 3:  # work for both, whatever the split
            orders.append(final_order())
        events = record_outcomes(orders)
        publish_all(events)
        smtp_server.wait_for(len(events))
        wait_until(lambda: sum(committed_offsets().values()) == len(events), message="offsets committed")
    finally:
        first.stop()
        second.stop()

    assert smtp_server.event_counts() == {str(event.event_id): 1 for event in events}
    assert first.stats.sent > 0 and second.stats.sent > 0
    assert first.stats.sent + second.stats.sent == len(events)
    assert first.stats.duplicates + second.stats.duplicates == 0


# --- command options ------------------------------------------------------------------------------


def test_group_option_names_the_consumer_group(email_pipeline, smtp_server):
    publish_all(record_outcomes([final_order()]))
    group = f"{email_pipeline.KAFKA_EMAIL_CONSUMER_GROUP}-custom"

    call_command("run_email_consumer", group=group, max_messages=1, idle_timeout=15, stdout=StringIO())

    smtp_server.wait_for(1)
    assert sum(committed_offsets(group).values()) == 1
    assert committed_offsets() == {}  # the default group has read nothing


@pytest.mark.parametrize(
    ("bootstrap_servers", "options", "message"),
    [
        ("127.0.0.1:9", {"max_messages": 0}, "--max-messages must be at least 1"),
        ("", {}, "KAFKA_BOOTSTRAP_SERVERS is not set"),
    ],
)
def test_command_refuses_to_start_without_what_it_needs(settings, bootstrap_servers, options, message):
    settings.KAFKA_BOOTSTRAP_SERVERS = bootstrap_servers

    with pytest.raises(CommandError, match=message):
        call_command("run_email_consumer", **options)
