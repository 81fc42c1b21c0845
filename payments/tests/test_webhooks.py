"""PayPal webhooks: the simulator signs and POSTs events to the shop on the live server, the shop
verifies them with PayPal (the simulator) and acts on each event id once."""

import json
import time
from decimal import Decimal

import pytest
import requests
from django.db import connection

from orders.models import Order
from orders.services import order_fail
from orders.tests.invariants import assert_invariants
from payments import gateway
from payments.expiry import payment_expire_overdue
from payments.models import Payment, WebhookEvent
from payments.services import payment_capture
from payments.tests.factories import ProductFactory, UserFactory, available, expire, start_order

# The shop answers the simulator from the live server's thread: it sees committed rows only.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def webhook_url(live_server, settings):
    settings.SITE_URL = live_server.url
    return f"{live_server.url}/payments/paypal/webhook/"


@pytest.fixture
def mug():
    return ProductFactory(price=Decimal("8.00"), on_hand=10)


@pytest.fixture
def order(paypal, mug):
    return start_order(user=UserFactory(), lines=[(mug, 2)])


def refreshed(order: Order) -> Order:
    return Order.objects.select_related("payment").get(pk=order.pk)


def send(paypal, order, event_type, url):
    result = paypal.webhook(order.payment.provider_order_id, event_type, url=url)
    return result["delivery"], json.loads(result["body"])


def wait_for(condition, timeout=15.0):
    """Wait until ``condition()`` is true (the simulator sends some webhooks from its own thread)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        connection.close()  # each check reads the latest committed rows
        time.sleep(0.05)


def test_completion_by_webhook_alone(paypal, order, webhook_url, mug, outcomes):
    """The shopper approved at PayPal and closed the tab: CHECKOUT.ORDER.APPROVED captures and completes."""
    paypal.approve(order.payment.provider_order_id)
    delivery, event = send(paypal, order, "CHECKOUT.ORDER.APPROVED", webhook_url)
    assert delivery["status"] == 200, delivery
    assert json.loads(delivery["body"]) == {"status": "handled"}

    order = refreshed(order)
    assert (order.status, order.payment.status) == ("SUCCESS", "SUCCESS")
    assert paypal.order(order.payment.provider_order_id)["capture_calls"] == 1
    record = WebhookEvent.objects.get()
    assert (record.event_id, record.event_type, record.outcome) == (
        event["id"],
        "CHECKOUT.ORDER.APPROVED",
        "handled",
    )
    assert (record.payment_id, record.processed_at is not None) == (order.payment.pk, True)
    assert outcomes == [(order.pk, "SUCCESS", "SUCCESS")]
    assert_invariants({mug.pk: 10})


def test_simulator_sends_webhooks_by_itself_when_configured(paypal, order, webhook_url, outcomes):
    paypal.configure(webhook_url=webhook_url)
    answer = requests.post(
        order.payment.approval_url, data={"action": "approve"}, allow_redirects=False, timeout=5
    )
    assert answer.status_code == 303  # the shopper closes the tab here instead of following it

    wait_for(lambda: refreshed(order).status == "SUCCESS")
    # The capture's own PAYMENT.CAPTURE.COMPLETED follows; it changes nothing.
    wait_for(
        lambda: WebhookEvent.objects.filter(
            event_type="PAYMENT.CAPTURE.COMPLETED", outcome="handled"
        ).exists()
    )
    assert paypal.order(order.payment.provider_order_id)["capture_calls"] == 1
    assert outcomes == [(order.pk, "SUCCESS", "SUCCESS")]


def test_forged_webhook_is_rejected_and_changes_nothing(paypal, order, client):
    paypal.approve(order.payment.provider_order_id)
    signed = paypal.webhook(order.payment.provider_order_id, "CHECKOUT.ORDER.APPROVED")
    headers = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in signed["headers"].items()}
    event = json.loads(signed["body"])
    before = Payment.objects.get(pk=order.payment.pk)

    forged = {**event, "event_type": "PAYMENT.CAPTURE.COMPLETED"}
    response = client.post(
        "/payments/paypal/webhook/", json.dumps(forged), content_type="application/json", **headers
    )
    assert response.status_code == 400
    assert response.json()["code"] == "webhook_rejected"

    unsigned = client.post("/payments/paypal/webhook/", signed["body"], content_type="application/json")
    assert unsigned.status_code == 400
    not_json = client.post("/payments/paypal/webhook/", "{nope", content_type="application/json", **headers)
    assert not_json.status_code == 400
    assert client.get("/payments/paypal/webhook/").status_code == 405

    assert refreshed(order).status == "PENDING"
    after = Payment.objects.get(pk=order.payment.pk)
    assert (after.status, after.provider_responses, after.updated_at) == (
        before.status,
        before.provider_responses,
        before.updated_at,
    )
    assert not WebhookEvent.objects.exists()
    assert paypal.order(order.payment.provider_order_id)["capture_calls"] == 0

    # The genuine event, as signed, is accepted.
    genuine = client.post(
        "/payments/paypal/webhook/", signed["body"], content_type="application/json", **headers
    )
    assert genuine.status_code == 200
    assert refreshed(order).status == "SUCCESS"


def test_replayed_webhook_changes_nothing(paypal, order, webhook_url, outcomes):
    paypal.approve(order.payment.provider_order_id)
    delivery, event = send(paypal, order, "CHECKOUT.ORDER.APPROVED", webhook_url)
    assert delivery["status"] == 200
    payment = Payment.objects.get(pk=order.payment.pk)
    requests_before = len(paypal.requests())

    replay = paypal.resend_webhook(event["id"], webhook_url)["delivery"]
    assert (replay["status"], json.loads(replay["body"])) == (200, {"status": "duplicate"})
    again = Payment.objects.get(pk=order.payment.pk)
    assert (again.provider_responses, again.updated_at) == (payment.provider_responses, payment.updated_at)
    assert WebhookEvent.objects.count() == 1
    # Only the signature was checked with PayPal: no capture, no read.
    assert [entry["path"] for entry in paypal.requests()[requests_before:]] == [
        "/v1/notifications/verify-webhook-signature"
    ]
    assert outcomes == [(order.pk, "SUCCESS", "SUCCESS")]


def test_capture_on_an_order_that_already_failed_is_refunded(
    paypal, order, webhook_url, mug, settings, outcomes
):
    paypal.approve(order.payment.provider_order_id)
    # The shop's capture reached PayPal, but the answer was lost...
    paypal.fail(1, mode="drop_response", match="/capture")
    with pytest.raises(Exception, match="could not be reached"):
        payment_capture(order_id=order.pk)
    # ...and PayPal stayed unreachable until the hold expired and the grace period passed.
    settings.PAYPAL_SETTLE_GRACE_SECONDS = 60
    expire(order, seconds_ago=120)
    paypal.fail(1, match=f"/v2/checkout/orders/{order.payment.provider_order_id}")
    payment_expire_overdue()
    order = refreshed(order)
    assert (order.status, order.failure_reason, available(mug)) == ("FAILED", "reservation_expired", 10)

    delivery, event = send(paypal, order, "PAYMENT.CAPTURE.COMPLETED", webhook_url)
    assert delivery["status"] == 200, delivery

    order = refreshed(order)
    paypal_payments = paypal.order(order.payment.provider_order_id)["order"]["purchase_units"][0]["payments"]
    assert (order.status, order.failure_reason) == ("FAILED", "reservation_expired")
    assert order.payment.status == "REFUNDED"
    assert order.payment.capture_id == event["resource"]["id"] == paypal_payments["captures"][0]["id"]
    assert order.payment.refund_id == paypal_payments["refunds"][0]["id"]
    assert paypal_payments["captures"][0]["status"] == "REFUNDED"
    assert available(mug) == 10
    # The failure was told when the hold expired; the refund is told too.
    assert outcomes == [(order.pk, "FAILED", "FAILED"), (order.pk, "FAILED", "REFUNDED")]
    assert_invariants({mug.pk: 10})

    # PayPal's PAYMENT.CAPTURE.REFUNDED that follows changes nothing more.
    delivery, _event = send(paypal, order, "PAYMENT.CAPTURE.REFUNDED", webhook_url)
    assert delivery["status"] == 200
    assert len(outcomes) == 2
    assert len(paypal_payments["refunds"]) == 1


def test_refund_of_a_late_capture_is_retried_when_paypal_fails(paypal, order, webhook_url, mug, outcomes):
    paypal.approve(order.payment.provider_order_id)
    paypal.capture(order.payment.provider_order_id)  # a capture whose answer the shop never saw
    order_fail(order_id=order.pk, reason="reservation_expired")

    paypal.fail(1, match="/refund")
    delivery, event = send(paypal, order, "PAYMENT.CAPTURE.COMPLETED", webhook_url)
    assert delivery["status"] == 503  # PayPal will deliver it again
    payment = refreshed(order).payment
    assert (payment.status, payment.capture_id) == ("FAILED", event["resource"]["id"])
    assert WebhookEvent.objects.get().processed_at is None

    redelivery = paypal.resend_webhook(event["id"], webhook_url)["delivery"]
    assert (redelivery["status"], json.loads(redelivery["body"])) == (200, {"status": "handled"})
    assert refreshed(order).payment.status == "REFUNDED"
    assert outcomes == [(order.pk, "FAILED", "FAILED"), (order.pk, "FAILED", "REFUNDED")]


def test_capture_held_for_review_then_completed_by_webhook(paypal, order, webhook_url, mug, outcomes):
    paypal.approve(order.payment.provider_order_id)
    paypal.next_capture(order.payment.provider_order_id, "PENDING")
    assert payment_capture(order_id=order.pk).status == "PENDING"
    capture_id = refreshed(order).payment.capture_id
    assert capture_id

    paypal.settle_capture(capture_id, "COMPLETED")
    delivery, _event = send(paypal, order, "PAYMENT.CAPTURE.COMPLETED", webhook_url)
    assert delivery["status"] == 200
    order = refreshed(order)
    assert (order.status, order.payment.status, order.payment.capture_id) == (
        "SUCCESS",
        "SUCCESS",
        capture_id,
    )
    assert available(mug) == 8
    assert outcomes == [(order.pk, "SUCCESS", "SUCCESS")]


def test_capture_held_for_review_then_denied_by_webhook(paypal, order, webhook_url, mug, outcomes):
    paypal.approve(order.payment.provider_order_id)
    paypal.next_capture(order.payment.provider_order_id, "PENDING")
    payment_capture(order_id=order.pk)
    paypal.settle_capture(refreshed(order).payment.capture_id, "DECLINED")

    delivery, _event = send(paypal, order, "PAYMENT.CAPTURE.DENIED", webhook_url)
    assert delivery["status"] == 200
    order = refreshed(order)
    assert (order.status, order.failure_reason, order.payment.status) == (
        "FAILED",
        "payment_declined",
        "FAILED",
    )
    assert available(mug) == 10
    assert outcomes == [(order.pk, "FAILED", "FAILED")]


def test_refund_made_at_paypal_marks_the_payment_refunded(paypal, order, webhook_url):
    paypal.approve(order.payment.provider_order_id)
    payment_capture(order_id=order.pk)
    capture_id = refreshed(order).payment.capture_id
    refund = gateway.paypal_capture_refund(capture_id=capture_id, transaction_id="from-the-dashboard")

    delivery, _event = send(paypal, order, "PAYMENT.CAPTURE.REFUNDED", webhook_url)
    assert delivery["status"] == 200
    payment = refreshed(order).payment
    assert (payment.status, payment.refund_id) == ("REFUNDED", refund.id)
    assert refreshed(order).status == "SUCCESS"


def test_event_about_someone_elses_paypal_order_is_ignored(paypal, webhook_url):
    foreign = gateway.paypal_order_create(
        transaction_id="not-ours",
        reference="x",
        currency="USD",
        total=Decimal("5.00"),
        lines=[gateway.PurchaseLine(name="Other", sku="", quantity=1, unit_price=Decimal("5.00"))],
        return_url="http://elsewhere.example/r",
        cancel_url="http://elsewhere.example/c",
    )
    paypal.approve(foreign.id)
    result = paypal.webhook(foreign.id, "CHECKOUT.ORDER.APPROVED", url=webhook_url)
    assert (result["delivery"]["status"], json.loads(result["delivery"]["body"])) == (
        200,
        {"status": "ignored"},
    )
    assert paypal.order(foreign.id)["capture_calls"] == 0
    assert WebhookEvent.objects.get().outcome == "ignored"


def test_webhook_is_answered_503_when_paypal_cannot_verify_it(paypal, order, webhook_url):
    paypal.approve(order.payment.provider_order_id)
    paypal.fail(1, match="/verify-webhook-signature")
    delivery, event = send(paypal, order, "CHECKOUT.ORDER.APPROVED", webhook_url)
    assert delivery["status"] == 503
    assert refreshed(order).status == "PENDING"
    assert not WebhookEvent.objects.exists()

    assert paypal.resend_webhook(event["id"], webhook_url)["delivery"]["status"] == 200
    assert refreshed(order).status == "SUCCESS"
