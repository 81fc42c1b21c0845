"""The gateway: the real PayPal SDK over HTTP against the simulator, and how its errors come out."""

import json
from decimal import Decimal

import pytest

from payments import gateway
from payments.errors import (
    PaymentAlreadyCaptured,
    PaymentDeclined,
    PaymentGatewayError,
    PaymentNotApproved,
    PaymentProviderNotFound,
)

LINES = [
    gateway.PurchaseLine(name="Mug", sku="MUG-1", quantity=2, unit_price=Decimal("10.00")),
    gateway.PurchaseLine(name="Tea", sku="TEA-1", quantity=1, unit_price=Decimal("4.50")),
]


def create(transaction_id="11111111-1111-1111-1111-111111111111", total=Decimal("24.50"), lines=LINES):
    return gateway.paypal_order_create(
        transaction_id=transaction_id,
        reference="42",
        currency="USD",
        total=total,
        lines=lines,
        return_url="http://shop.example/payments/paypal/return/",
        cancel_url="http://shop.example/payments/paypal/cancel/",
    )


def test_create_sends_the_amount_items_and_experience_context(paypal):
    order = create()
    assert order.status == "PAYER_ACTION_REQUIRED"
    assert order.approval_url == f"{paypal.url}/checkoutnow?token={order.id}"

    state = paypal.order(order.id)
    unit = state["order"]["purchase_units"][0]
    assert unit["amount"] == {
        "currency_code": "USD",
        "value": "24.50",
        "breakdown": {"item_total": {"currency_code": "USD", "value": "24.50"}},
    }
    assert [
        (item["name"], item["sku"], item["quantity"], item["unit_amount"]["value"]) for item in unit["items"]
    ] == [
        ("Mug", "MUG-1", "2", "10.00"),
        ("Tea", "TEA-1", "1", "4.50"),
    ]
    assert (unit["invoice_id"], unit["custom_id"]) == ("11111111-1111-1111-1111-111111111111", "42")
    assert state["return_url"] == "http://shop.example/payments/paypal/return/"
    assert state["cancel_url"] == "http://shop.example/payments/paypal/cancel/"
    sent = [entry for entry in paypal.requests() if entry["path"] == "/v2/checkout/orders"]
    assert [entry["request_id"] for entry in sent] == ["11111111-1111-1111-1111-111111111111-create"]


def test_create_twice_with_the_same_transaction_makes_one_paypal_order(paypal):
    first, second = create(), create()
    assert first.id == second.id
    assert len(paypal.server.state.orders) == 1
    assert create(transaction_id="22222222-2222-2222-2222-222222222222").id != first.id


def test_create_refuses_lines_that_do_not_add_up_to_the_total(paypal):
    with pytest.raises(ValueError, match="not to the order total"):
        create(total=Decimal("1.00"))
    assert paypal.requests() == []


def test_capture_get_and_refund(paypal):
    order = create()
    paypal.approve(order.id)
    captured = gateway.paypal_order_capture(provider_order_id=order.id, transaction_id="t-1")
    assert captured.status == "COMPLETED"
    assert captured.completed_capture.amount == Decimal("24.50")
    assert captured.completed_capture.currency == "USD"
    again = gateway.paypal_order_capture(provider_order_id=order.id, transaction_id="t-1")
    assert again.completed_capture == captured.completed_capture
    assert paypal.order(order.id)["capture_calls"] == 1

    refund = gateway.paypal_capture_refund(capture_id=captured.completed_capture.id, transaction_id="t-1")
    assert (refund.status, refund.amount) == ("COMPLETED", Decimal("24.50"))
    assert (
        gateway.paypal_capture_refund(capture_id=captured.completed_capture.id, transaction_id="t-1")
        == refund
    )
    read = gateway.paypal_order_get(provider_order_id=order.id)
    assert [capture.status for capture in read.captures] == ["REFUNDED"]


def test_paypal_issues_become_our_errors(paypal):
    order = create()
    with pytest.raises(PaymentNotApproved) as not_approved:
        gateway.paypal_order_capture(provider_order_id=order.id, transaction_id="t-1")
    assert (not_approved.value.issue, not_approved.value.status_code) == ("ORDER_NOT_APPROVED", 422)
    assert not_approved.value.debug_id
    assert not_approved.value.code == "payment_not_approved"

    paypal.approve(order.id)
    paypal.decline_next_capture(order.id)
    with pytest.raises(PaymentDeclined) as declined:
        gateway.paypal_order_capture(provider_order_id=order.id, transaction_id="t-1")
    assert (declined.value.code, declined.value.issue) == ("payment_declined", "INSTRUMENT_DECLINED")

    gateway.paypal_order_capture(provider_order_id=order.id, transaction_id="t-1")
    with pytest.raises(PaymentAlreadyCaptured) as already:
        gateway.paypal_order_capture(provider_order_id=order.id, transaction_id="t-2")
    assert already.value.issue == "ORDER_ALREADY_CAPTURED"

    with pytest.raises(PaymentProviderNotFound) as missing:
        gateway.paypal_order_get(provider_order_id="NOSUCHORDER")
    assert (missing.value.issue, missing.value.status_code) == ("INVALID_RESOURCE_ID", 404)


def test_a_failing_paypal_is_a_gateway_error(paypal):
    order = create()
    paypal.fail(1)
    with pytest.raises(PaymentGatewayError) as failing:
        gateway.paypal_order_get(provider_order_id=order.id)
    assert (failing.value.code, failing.value.issue, failing.value.status_code) == (
        "gateway_error",
        "SERVICE_UNAVAILABLE",
        503,
    )
    paypal.fail(1, mode="disconnect")
    with pytest.raises(PaymentGatewayError) as dropped:
        gateway.paypal_order_get(provider_order_id=order.id)
    assert dropped.value.issue == "CONNECTION_ERROR"
    assert gateway.paypal_order_get(provider_order_id=order.id).id == order.id


def test_an_unreachable_paypal_is_a_gateway_error(paypal, paypal_unreachable):
    with pytest.raises(PaymentGatewayError) as unreachable:
        create()
    assert unreachable.value.issue == "CONNECTION_ERROR"
    assert "could not be reached" in unreachable.value.message


def test_a_slow_paypal_times_out(paypal, settings):
    order = create()
    settings.PAYPAL_TIMEOUT_SECONDS = 0.3
    paypal.fail(1, mode="delay", seconds=1.5, match=f"/v2/checkout/orders/{order.id}")
    with pytest.raises(PaymentGatewayError) as slow:
        gateway.paypal_order_get(provider_order_id=order.id)
    assert slow.value.issue == "TIMEOUT"
    assert "0.3 seconds" in slow.value.message


def test_wrong_credentials_are_a_gateway_error(paypal, settings):
    settings.PAYPAL_CLIENT_SECRET = "wrong"
    with pytest.raises(PaymentGatewayError) as refused:
        create()
    assert refused.value.issue == "AUTHENTICATION_FAILURE"


def test_a_token_paypal_forgot_is_replaced_transparently(paypal):
    order = create()
    paypal.server.state.tokens.clear()  # e.g. the simulator restarted; PayPal revoked the token
    assert gateway.paypal_order_get(provider_order_id=order.id).id == order.id
    paths = [entry["path"] for entry in paypal.requests()]
    assert paths[-3:] == [
        "/v2/checkout/orders/" + order.id,
        "/v1/oauth2/token",
        "/v2/checkout/orders/" + order.id,
    ]


def test_webhook_verification(paypal):
    order = create()
    paypal.approve(order.id)
    signed = paypal.webhook(order.id, "CHECKOUT.ORDER.APPROVED")
    event = json.loads(signed["body"])
    lowercase_headers = {name.lower(): value for name, value in signed["headers"].items()}

    assert gateway.paypal_webhook_verify(headers=lowercase_headers, event=event, webhook_id="test-webhook")
    assert not gateway.paypal_webhook_verify(
        headers=signed["headers"],
        event={**event, "event_type": "PAYMENT.CAPTURE.COMPLETED"},
        webhook_id="test-webhook",
    )
    calls = len(paypal.requests())
    without_signature = {k: v for k, v in signed["headers"].items() if k != "PAYPAL-TRANSMISSION-SIG"}
    assert not gateway.paypal_webhook_verify(
        headers=without_signature, event=event, webhook_id="test-webhook"
    )
    assert len(paypal.requests()) == calls  # nothing to ask PayPal about


def test_amounts_are_formatted_per_currency():
    assert gateway.format_amount(Decimal("10"), "USD") == "10.00"
    assert gateway.format_amount(Decimal("1500"), "JPY") == "1500"
