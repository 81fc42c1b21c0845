"""The gateway: the real PayPal SDK over HTTP against the simulator, and how its errors come out."""

import json
from decimal import Decimal

import pytest

from payments import gateway
from payments.errors import (
    PaymentAlreadyCaptured,
    PaymentAlreadyRefunded,
    PaymentDeclined,
    PaymentGatewayError,
    PaymentNotApproved,
    PaymentProviderNotFound,
    PaymentRejected,
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


@pytest.mark.parametrize(
    ("issue", "status", "error_class", "final"),
    [
        ("INSTRUMENT_DECLINED", 422, PaymentDeclined, True),
        ("TRANSACTION_REFUSED", 422, PaymentDeclined, True),
        ("PAYER_CANNOT_PAY", 422, PaymentDeclined, True),
        ("MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED", 422, PaymentDeclined, True),
        ("PAYER_ACTION_REQUIRED", 422, PaymentNotApproved, False),
        ("ORDER_NOT_APPROVED", 422, PaymentNotApproved, False),
        ("ORDER_ALREADY_CAPTURED", 422, PaymentAlreadyCaptured, False),
        ("CAPTURE_FULLY_REFUNDED", 422, PaymentAlreadyRefunded, True),
        ("RESOURCE_NOT_FOUND", 404, PaymentProviderNotFound, True),
        ("ORDER_EXPIRED", 422, PaymentProviderNotFound, True),
        ("ORDER_COMPLETION_IN_PROGRESS", 422, PaymentGatewayError, False),
        ("INTERNAL_SERVER_ERROR", 500, PaymentGatewayError, False),
        ("INSTRUMENT_DECLINED", 503, PaymentGatewayError, False),  # any 5xx: nothing is known
        ("RATE_LIMIT_REACHED", 429, PaymentGatewayError, False),
        ("A_NAME_PAYPAL_ADDS_NEXT_YEAR", 422, PaymentRejected, True),
        ("A_NAME_PAYPAL_ADDS_NEXT_YEAR", 404, PaymentProviderNotFound, True),
        ("A_NAME_PAYPAL_ADDS_NEXT_YEAR", 502, PaymentGatewayError, False),
    ],
)
def test_every_paypal_refusal_is_final_or_retryable_by_its_name(issue, status, error_class, final):
    assert gateway.error_for_issue(issue, status) is error_class
    assert error_class.final is final


@pytest.mark.parametrize("issue", ["TRANSACTION_REFUSED", "PAYER_CANNOT_PAY", "DUPLICATE_INVOICE_ID"])
def test_capture_refusals_come_out_final_through_the_sdk(paypal, issue):
    order = create()
    paypal.approve(order.id)
    paypal.next_capture(order.id, issue)
    with pytest.raises(PaymentRejected) as refused:
        gateway.paypal_order_capture(provider_order_id=order.id, transaction_id="t-1")
    assert (refused.value.issue, refused.value.status_code, refused.value.final) == (issue, 422, True)


def test_an_order_reads_its_refunds(paypal):
    order = create()
    paypal.approve(order.id)
    capture = gateway.paypal_order_capture(provider_order_id=order.id, transaction_id="t-1").completed_capture
    paypal.refund(capture.id, "4.50")
    read = gateway.paypal_order_get(provider_order_id=order.id)
    assert read.refunded_amount == Decimal("4.50")
    assert (read.completed_capture.status, read.completed_capture.is_fully_refunded) == (
        "PARTIALLY_REFUNDED",
        False,
    )
    paypal.refund(capture.id)
    read = gateway.paypal_order_get(provider_order_id=order.id)
    assert read.refunded_amount == Decimal("24.50") and read.completed_capture.is_fully_refunded
