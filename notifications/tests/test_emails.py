"""Parsing an event off the topic, rendering its email, and sending it once (no Kafka here)."""

import json
import threading
import uuid

import pytest
from django.core import mail
from django.db import connection

from notifications.delivery import DeliveryResult, email_send_order_outcome
from notifications.errors import EmailNotSent, InvalidMessage, UnknownEventType, UnknownOrder
from notifications.events import order_outcome_parse
from notifications.models import DeliveryStatus, EmailDelivery
from notifications.tests.factories import UserFactory, final_order
from notifications.tests.helpers import wait_until
from orders.models import OrderStatus
from orders.outcomes import order_outcome_record


def event_of(final, **changes):
    payload = order_outcome_record(order=final).payload
    payload.update(changes)
    return order_outcome_parse(json.dumps(payload).encode())


# --- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (None, InvalidMessage),
        (b"\xff\xfe", InvalidMessage),
        (b"{not json", InvalidMessage),
        (b"[1, 2]", InvalidMessage),
        (b'{"event_id": "nope", "type": "order.succeeded"}', InvalidMessage),
        (json.dumps({"event_id": str(uuid.uuid4()), "type": "order.shipped"}).encode(), UnknownEventType),
        (json.dumps({"event_id": str(uuid.uuid4()), "type": "order.succeeded"}).encode(), InvalidMessage),
    ],
)
def test_parse_rejects_what_cannot_be_an_outcome_event(raw, error):
    with pytest.raises(error) as caught:
        order_outcome_parse(raw)

    assert caught.value.code in {"invalid_message", "unknown_event_type"}


@pytest.mark.django_db
def test_parse_rejects_a_failure_without_reason():
    payload = order_outcome_record(
        order=final_order(status=OrderStatus.FAILED, reason="gateway_error")
    ).payload
    payload["reason"] = None

    with pytest.raises(InvalidMessage):
        order_outcome_parse(json.dumps(payload))


@pytest.mark.django_db
def test_parse_reads_what_the_outbox_writes():
    order = final_order(status=OrderStatus.FAILED, reason="gateway_error", language="vi")
    recorded = order_outcome_record(order=order)

    event = order_outcome_parse(json.dumps(recorded.payload).encode())

    assert event.event_id == recorded.event_id
    assert event.type == "order.failed"
    assert (event.order_id, event.recipient, event.language) == (order.pk, order.user.email, "vi")
    assert event.reason_code == "gateway_error"


# --- sending (locmem backend) -------------------------------------------------------------------


@pytest.mark.django_db
def test_send_renders_a_multipart_email_and_records_the_delivery():
    order = final_order(status=OrderStatus.FAILED, reason="cancelled_by_shopper")
    order.lines.update(product_name="Tea & <Biscuits>")
    event = event_of(order)

    assert email_send_order_outcome(event=event) == DeliveryResult.SENT

    (message,) = mail.outbox
    assert message.subject == f"Order #{order.pk} could not be completed"
    assert message.to == [order.user.email]
    assert message.extra_headers["X-Shop-Event-Id"] == str(event.event_id)
    assert "Tea & <Biscuits>" in message.body  # plain text is not HTML-escaped
    ((html, mimetype),) = message.alternatives
    assert mimetype == "text/html"
    assert "Tea &amp; &lt;Biscuits&gt;" in html  # HTML is
    assert "You cancelled the order." in message.body
    assert "Nothing was charged." in message.body
    delivery = EmailDelivery.objects.get()
    assert (delivery.event_id, delivery.order_id, delivery.type) == (event.event_id, order.pk, "order.failed")
    assert (delivery.status, delivery.attempts, delivery.recipient) == (
        DeliveryStatus.SENT,
        1,
        order.user.email,
    )
    assert delivery.subject == message.subject
    assert delivery.sent_at is not None


@pytest.mark.django_db
def test_send_twice_sends_once():
    event = event_of(final_order())

    assert email_send_order_outcome(event=event) == DeliveryResult.SENT
    assert email_send_order_outcome(event=event) == DeliveryResult.DUPLICATE

    assert len(mail.outbox) == 1
    assert EmailDelivery.objects.count() == 1


@pytest.mark.django_db
def test_shopper_without_address_is_skipped_not_retried():
    event = event_of(final_order(user=UserFactory(email="")))

    assert email_send_order_outcome(event=event) == DeliveryResult.SKIPPED

    assert mail.outbox == []
    assert EmailDelivery.objects.get().status == DeliveryStatus.SKIPPED
    assert email_send_order_outcome(event=event) == DeliveryResult.DUPLICATE


@pytest.mark.django_db
def test_unknown_language_falls_back_to_english():
    event = event_of(final_order(language="xx"))

    email_send_order_outcome(event=event)

    assert mail.outbox[0].subject.endswith("is confirmed: thank you for your payment")
    assert EmailDelivery.objects.get().language == "en"


@pytest.mark.django_db
def test_unknown_order_is_poison():
    order = final_order()
    event = event_of(order, order=dict(order_outcome_record(order=order).payload["order"], id=order.pk + 999))

    with pytest.raises(UnknownOrder) as caught:
        email_send_order_outcome(event=event)

    assert caught.value.code == "unknown_order"
    assert not EmailDelivery.objects.exists()


@pytest.mark.django_db
def test_event_id_reused_for_another_order_is_poison():
    first, second = final_order(), final_order()
    event = event_of(first)
    email_send_order_outcome(event=event)
    forged = event_of(second, event_id=str(event.event_id))

    with pytest.raises(InvalidMessage):
        email_send_order_outcome(event=forged)

    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_unreachable_server_does_not_use_up_attempts(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    settings.EMAIL_MAX_ATTEMPTS = 1
    event = event_of(final_order())

    for _ in range(3):
        with pytest.raises(EmailNotSent) as caught:
            email_send_order_outcome(event=event)
        assert caught.value.data["kind"] == "unreachable"

    delivery = EmailDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)
    assert "refused" in delivery.last_error.lower()


@pytest.mark.django_db(transaction=True)
def test_two_senders_of_one_event_send_it_once(smtp_settings, smtp_server):
    """The delivery row lock: the second sender waits for the first, then finds the email sent."""
    event = event_of(final_order())
    smtp_server.hold_rcpt(after_messages=0)
    results = {}

    def send(name):
        try:
            results[name] = email_send_order_outcome(event=event)
        finally:
            connection.close()

    first = threading.Thread(target=send, args=("first",))
    first.start()
    wait_until(smtp_server.holding.is_set, message="the first sender is talking to the server")
    second = threading.Thread(target=send, args=("second",))
    second.start()
    second.join(1.0)
    assert second.is_alive()  # waiting on the row lock, not sending
    smtp_server.release()
    first.join(10)
    second.join(10)

    assert results == {"first": DeliveryResult.SENT, "second": DeliveryResult.DUPLICATE}
    assert smtp_server.event_counts() == {str(event.event_id): 1}
    assert smtp_server.rcpt_count == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "payment_status", "what", "after"),
    [
        (
            "en",
            "REFUNDED",
            "PayPal charged an amount that differs from your order's total",
            "We refunded that",
        ),
        (
            "en",
            "FAILED",
            "PayPal charged an amount that differs from your order's total",
            "The whole payment goes",
        ),
        (
            "vi",
            "REFUNDED",
            "PayPal đã thu một số tiền khác với tổng tiền đơn hàng",
            "Chúng tôi đã hoàn lại toàn bộ",
        ),
        ("vi", "FAILED", "PayPal đã thu một số tiền khác với tổng tiền đơn hàng", "Toàn bộ khoản thanh toán"),
    ],
)
def test_amount_mismatch_email_never_says_nothing_was_charged(language, payment_status, what, after):
    order = final_order(
        status=OrderStatus.FAILED, reason="amount_mismatch", language=language, payment_status=payment_status
    )
    event = event_of(order)
    assert event.payload["reason"]["code"] == "amount_mismatch"
    assert what in event.payload["reason"]["message"]

    email_send_order_outcome(event=event)

    (message,) = mail.outbox
    assert what in message.body and after in message.body
    assert "Nothing was charged" not in message.body and "Bạn chưa bị trừ tiền" not in message.body
