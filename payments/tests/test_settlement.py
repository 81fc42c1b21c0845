"""Every order settles whatever PayPal answers (issue 11): placement and expired PayPal orders, every
kind of PayPal refusal, the grace deadline, amounts that do not match, partial refunds.

The real SDK against the simulator; the simulator's own state says where the money is.
"""

import logging
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from orders.models import Order
from orders.services import order_cancel
from orders.tests.invariants import assert_invariants
from payments.errors import PaymentGatewayError, PaymentNotApproved
from payments.expiry import payment_expire_overdue, payment_settle_expired
from payments.models import Payment
from payments.services import payment_capture, payment_refund
from payments.tests.at_paypal import capture_statuses, deliver_webhook, money_kept, paypal_payments
from payments.tests.factories import ProductFactory, UserFactory, available, expire, start_order


def refreshed(order: Order) -> Order:
    return Order.objects.select_related("payment").get(pk=order.pk)


def captured_but_the_answer_was_lost(paypal, order: Order) -> None:
    paypal.approve(order.payment.provider_order_id)
    paypal.fail(1, mode="drop_response", match="/capture")
    with pytest.raises(PaymentGatewayError):
        payment_capture(order_id=order.pk)
    assert capture_statuses(paypal, order.payment.provider_order_id) == ["COMPLETED"]


def api_order(product, quantity=1):
    client = APIClient()
    client.force_authenticate(UserFactory())
    return client.post(
        "/api/orders/", {"lines": [{"product": product.pk, "quantity": quantity}]}, format="json"
    )


# --- Placement leaves expired orders with a PayPal order to the payments code ---------------------------


@pytest.mark.django_db(transaction=True)
def test_placement_completes_an_expired_order_that_paypal_captured(paypal):
    """The issue's reproduction: her capture's answer was lost, her hold expired, another shopper
    orders the last unit. Her order is paid (PayPal says so), not failed with the money kept."""
    lamp = ProductFactory(on_hand=1)
    hers = start_order(user=UserFactory(), lines=[(lamp, 1)])
    captured_but_the_answer_was_lost(paypal, hers)
    expire(hers)

    response = api_order(lamp)

    assert response.status_code == 409, response.json()
    assert response.json() == {
        "code": "out_of_stock",
        "message": "Some products do not have enough stock.",
        "items": [{"product": lamp.pk, "requested": 1, "available": 0}],
    }
    hers = refreshed(hers)
    assert (hers.status, hers.payment.status) == ("SUCCESS", "SUCCESS")
    assert capture_statuses(paypal, hers.payment.provider_order_id) == ["COMPLETED"]
    assert (
        hers.payment.capture_id
        == paypal_payments(paypal, hers.payment.provider_order_id)["captures"][0]["id"]
    )
    assert Order.objects.count() == 1
    assert_invariants({lamp.pk: 1})


@pytest.mark.django_db(transaction=True)
def test_placement_captures_an_expired_order_the_payer_approved(paypal):
    lamp = ProductFactory(on_hand=1)
    hers = start_order(user=UserFactory(), lines=[(lamp, 1)])
    paypal.approve(hers.payment.provider_order_id)
    expire(hers)

    assert api_order(lamp).status_code == 409

    hers = refreshed(hers)
    assert (hers.status, hers.payment.status) == ("SUCCESS", "SUCCESS")
    assert paypal.order(hers.payment.provider_order_id)["capture_calls"] == 1
    assert_invariants({lamp.pk: 1})


@pytest.mark.django_db(transaction=True)
def test_placement_fails_an_expired_order_that_paypal_did_not_get_paid_and_takes_its_stock(paypal):
    lamp = ProductFactory(on_hand=1)
    hers = start_order(user=UserFactory(), lines=[(lamp, 1)])  # never approved
    expire(hers)

    response = api_order(lamp)

    assert response.status_code == 201, response.json()
    hers = refreshed(hers)
    assert (hers.status, hers.failure_reason, hers.payment.status) == (
        "FAILED",
        "reservation_expired",
        "FAILED",
    )
    assert hers.payment.needs_reconciliation is False  # PayPal said: nothing captured
    new = Order.objects.get(pk=response.json()["id"])
    assert new.status == "PENDING" and available(lamp) == 0
    assert_invariants({lamp.pk: 1})


@pytest.mark.django_db(transaction=True)
def test_placement_never_fails_an_expired_paypal_order_it_could_not_ask_about(paypal):
    lamp = ProductFactory(on_hand=1)
    hers = start_order(user=UserFactory(), lines=[(lamp, 1)])
    paypal.approve(hers.payment.provider_order_id)
    expire(hers)
    paypal.fail(2, match=f"/v2/checkout/orders/{hers.payment.provider_order_id}")

    assert api_order(lamp).status_code == 409
    assert refreshed(hers).status == "PENDING"
    assert paypal.order(hers.payment.provider_order_id)["capture_calls"] == 0


# --- Refusals: final ones settle at once -------------------------------------------------------------------


@pytest.mark.parametrize(
    "issue",
    [
        "INSTRUMENT_DECLINED",
        "TRANSACTION_REFUSED",
        "PAYER_CANNOT_PAY",
        "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED",
        "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING",
        "COMPLIANCE_VIOLATION",
    ],
)
def test_a_declining_capture_refusal_fails_the_order_at_once(paypal, shopper, outcomes, issue):
    mug = ProductFactory(on_hand=4)
    order = start_order(user=shopper, lines=[(mug, 2)])
    paypal.approve(order.payment.provider_order_id)
    paypal.next_capture(order.payment.provider_order_id, issue)

    order = payment_capture(order_id=order.pk)

    assert (order.status, order.failure_reason, order.payment.status) == (
        "FAILED",
        "payment_declined",
        "FAILED",
    )
    assert order.payment.provider_responses[-1]["issue"] == issue
    assert order.payment.needs_reconciliation is False
    assert available(mug) == 4
    assert outcomes == [(order.pk, "FAILED", "FAILED")]
    # Nothing is left for the sweep to retry.
    expire(order, seconds_ago=60)
    assert payment_expire_overdue().settled_with_provider == []
    assert paypal.order(order.payment.provider_order_id)["capture_calls"] == 1


def test_a_refusal_we_do_not_know_is_final_and_the_sweep_checks_nothing_was_taken(paypal, shopper, outcomes):
    mug = ProductFactory(on_hand=4)
    order = start_order(user=shopper, lines=[(mug, 1)])
    paypal.approve(order.payment.provider_order_id)
    paypal.next_capture(order.payment.provider_order_id, "DUPLICATE_INVOICE_ID")

    order = payment_capture(order_id=order.pk)

    assert (order.status, order.failure_reason) == ("FAILED", "payment_declined")
    assert order.payment.needs_reconciliation is True
    sweep = payment_expire_overdue()
    assert sweep.reconciled == [order.pk]
    assert refreshed(order).payment.needs_reconciliation is False
    assert money_kept(paypal, order.payment.provider_order_id) == 0


@pytest.mark.parametrize(
    ("issue", "raised"),
    [("ORDER_COMPLETION_IN_PROGRESS", PaymentGatewayError), ("PAYER_ACTION_REQUIRED", PaymentNotApproved)],
)
def test_a_retryable_capture_refusal_keeps_the_order_pending_for_the_next_try(paypal, shopper, issue, raised):
    mug = ProductFactory(on_hand=4)
    order = start_order(user=shopper, lines=[(mug, 1)])
    paypal.approve(order.payment.provider_order_id)
    paypal.next_capture(order.payment.provider_order_id, issue)

    with pytest.raises(raised):
        payment_capture(order_id=order.pk)
    assert refreshed(order).status == "PENDING" and available(mug) == 3
    assert payment_capture(order_id=order.pk).status == "SUCCESS"


# --- The grace deadline bounds every error -----------------------------------------------------------------


def approved(paypal, order):
    paypal.approve(order.payment.provider_order_id)


def capture_held_for_review(paypal, order):
    paypal.approve(order.payment.provider_order_id)
    paypal.next_capture(order.payment.provider_order_id, "PENDING")


def capture_refused_retryably(paypal, order):
    paypal.approve(order.payment.provider_order_id)
    paypal.next_capture(order.payment.provider_order_id, "ORDER_COMPLETION_IN_PROGRESS")


def paypal_failing(status=None, mode="status", match=""):
    def fail(paypal, order):
        paypal.approve(order.payment.provider_order_id)
        paypal.fail(10, mode=mode, match=match, **({"status": status} if status else {}))

    return fail


@pytest.mark.parametrize(
    "trouble",
    [
        pytest.param(paypal_failing(503), id="503-everywhere"),
        pytest.param(paypal_failing(500, match="/capture"), id="500-on-capture"),
        pytest.param(paypal_failing(429), id="rate-limited"),
        pytest.param(paypal_failing(mode="disconnect"), id="disconnect"),
        pytest.param(paypal_failing(mode="drop_response", match="/capture"), id="capture-answer-lost"),
        pytest.param(capture_refused_retryably, id="order-completion-in-progress"),
        pytest.param(capture_held_for_review, id="capture-held-for-review"),
    ],
)
def test_no_order_stays_pending_past_the_grace_whatever_paypal_answers(paypal, shopper, settings, trouble):
    settings.PAYPAL_SETTLE_GRACE_SECONDS = 600
    mug = ProductFactory(on_hand=3)
    order = start_order(user=shopper, lines=[(mug, 1)])
    trouble(paypal, order)

    expire(order, seconds_ago=60)
    payment_expire_overdue()
    if refreshed(order).status == "PENDING":  # within the grace the order waits, holding its stock
        assert available(mug) == 2
    expire(order, seconds_ago=601)
    if trouble is capture_refused_retryably:
        paypal.next_capture(order.payment.provider_order_id, "ORDER_COMPLETION_IN_PROGRESS")
    payment_expire_overdue()

    order = refreshed(order)
    if order.status == "PENDING":
        raise AssertionError(f"order still PENDING past the grace: {order.payment.provider_responses[-1]}")
    assert order.status in {"SUCCESS", "FAILED"}
    if order.status == "FAILED":
        assert order.failure_reason == "reservation_expired" and available(mug) == 3
        # PayPal may hold money the shop has not heard of: the payment says it must be checked.
        assert order.payment.needs_reconciliation or money_kept(paypal, order.payment.provider_order_id) == 0

    # PayPal answers again (and releases a held capture): nothing is kept for a failed order.
    paypal.server.state.failures.clear()
    held = [c["id"] for c in paypal_payments(paypal, order.payment.provider_order_id)["captures"]]
    if trouble is capture_held_for_review:
        paypal.settle_capture(held[0], "COMPLETED")
    payment_expire_overdue()
    order = refreshed(order)
    if order.status == "FAILED":
        assert money_kept(paypal, order.payment.provider_order_id) == 0
        assert order.payment.needs_reconciliation is False
    else:
        assert capture_statuses(paypal, order.payment.provider_order_id) == ["COMPLETED"]
    assert_invariants({mug.pk: 3})


def test_a_capture_refused_retryably_every_minute_still_ends_at_the_grace(
    paypal, shopper, settings, outcomes
):
    """The issue's second reproduction: the sweep retried for ever; now the grace ends it."""
    settings.PAYPAL_SETTLE_GRACE_SECONDS = 3600
    mug = ProductFactory(on_hand=1)
    order = start_order(user=shopper, lines=[(mug, 1)])
    paypal.approve(order.payment.provider_order_id)
    for minutes in (1, 30, 59):
        paypal.next_capture(order.payment.provider_order_id, "ORDER_COMPLETION_IN_PROGRESS")
        expire(order, seconds_ago=minutes * 60)
        payment_expire_overdue()
        assert refreshed(order).status == "PENDING"
    paypal.next_capture(order.payment.provider_order_id, "ORDER_COMPLETION_IN_PROGRESS")
    expire(order, seconds_ago=24 * 3600)
    payment_expire_overdue()
    order = refreshed(order)
    assert (order.status, order.failure_reason, available(mug)) == ("FAILED", "reservation_expired", 1)
    assert outcomes == [(order.pk, "FAILED", "FAILED")]


def test_a_capture_that_surfaces_after_the_grace_is_refunded_by_the_sweep(
    paypal, shopper, settings, outcomes
):
    settings.PAYPAL_SETTLE_GRACE_SECONDS = 60
    mug = ProductFactory(on_hand=2)
    order = start_order(user=shopper, lines=[(mug, 1)])
    captured_but_the_answer_was_lost(paypal, order)
    expire(order, seconds_ago=120)
    # PayPal does not answer this sweep: not to settle the order, not to check it again.
    paypal.fail(2, match=f"/v2/checkout/orders/{order.payment.provider_order_id}")
    payment_expire_overdue()
    order = refreshed(order)
    assert (order.status, order.payment.status, order.payment.needs_reconciliation) == (
        "FAILED",
        "FAILED",
        True,
    )
    assert money_kept(paypal, order.payment.provider_order_id) == order.total  # PayPal has it, for now

    sweep = payment_expire_overdue()

    assert sweep.reconciled == [order.pk]
    order = refreshed(order)
    assert (order.payment.status, order.payment.refunded_amount) == ("REFUNDED", order.total)
    assert order.payment.needs_reconciliation is False
    assert money_kept(paypal, order.payment.provider_order_id) == 0
    assert outcomes == [(order.pk, "FAILED", "FAILED"), (order.pk, "FAILED", "REFUNDED")]


def test_settle_expired_fails_an_order_paypal_let_expire(paypal, shopper):
    mug = ProductFactory(on_hand=2)
    order = start_order(user=shopper, lines=[(mug, 1)])
    paypal.approve(order.payment.provider_order_id)
    paypal.expire(order.payment.provider_order_id)
    expire(order)
    order = payment_settle_expired(order_id=order.pk)
    assert (order.status, order.failure_reason) == ("FAILED", "reservation_expired")
    assert order.payment.provider_responses[-1]["status_code"] == 404
    assert payment_expire_overdue().reconciled == [order.pk]
    assert refreshed(order).payment.needs_reconciliation is False


def test_a_cancel_while_a_capture_answer_was_lost_is_refunded_by_the_sweep(paypal, shopper, outcomes):
    mug = ProductFactory(on_hand=2)
    order = start_order(user=shopper, lines=[(mug, 1)])
    captured_but_the_answer_was_lost(paypal, order)

    order_cancel(user=shopper, order_id=order.pk)
    assert refreshed(order).payment.needs_reconciliation is True
    payment_expire_overdue()

    order = refreshed(order)
    assert (order.status, order.failure_reason, order.payment.status) == (
        "FAILED",
        "cancelled_by_shopper",
        "REFUNDED",
    )
    assert money_kept(paypal, order.payment.provider_order_id) == 0
    assert outcomes == [(order.pk, "FAILED", "FAILED"), (order.pk, "FAILED", "REFUNDED")]


# --- Captures whose amount or currency is not the payment's -----------------------------------------------


@pytest.mark.parametrize(
    "captured", [{"value": "1.00", "currency_code": "USD"}, {"value": "25.00", "currency_code": "EUR"}]
)
def test_a_capture_of_another_amount_is_refunded_and_the_order_fails(
    paypal, shopper, caplog, outcomes, captured
):
    mug = ProductFactory(price=Decimal("12.50"), on_hand=3)
    order = start_order(user=shopper, lines=[(mug, 2)])
    paypal.approve(order.payment.provider_order_id)
    paypal.next_capture(order.payment.provider_order_id, "COMPLETED", amount=captured)

    with caplog.at_level(logging.ERROR, logger="payments.services"):
        order = payment_capture(order_id=order.pk)

    assert (order.status, order.failure_reason) == ("FAILED", "amount_mismatch")
    assert (order.payment.status, order.payment.refunded_amount) == ("REFUNDED", Decimal(captured["value"]))
    assert capture_statuses(paypal, order.payment.provider_order_id) == ["REFUNDED"]
    assert money_kept(paypal, order.payment.provider_order_id) == 0
    assert available(mug) == 3
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1 and "refunding it" in errors[0].getMessage()
    assert captured["value"] in errors[0].getMessage() and captured["currency_code"] in errors[0].getMessage()
    assert outcomes == [(order.pk, "FAILED", "REFUNDED")]  # one email, which says it was refunded


def test_a_mismatched_capture_paypal_will_not_refund_yet_is_refunded_by_the_sweep(paypal, shopper):
    mug = ProductFactory(price=Decimal("10.00"), on_hand=3)
    order = start_order(user=shopper, lines=[(mug, 1)])
    paypal.approve(order.payment.provider_order_id)
    paypal.next_capture(
        order.payment.provider_order_id, "COMPLETED", amount={"value": "9.99", "currency_code": "USD"}
    )
    paypal.fail(1, match="/refund")

    order = payment_capture(order_id=order.pk)
    assert (order.status, order.failure_reason, order.payment.status) == (
        "FAILED",
        "amount_mismatch",
        "FAILED",
    )
    assert order.payment.needs_reconciliation is True

    payment_expire_overdue()
    payment = Payment.objects.get(order=order)
    assert (payment.status, payment.refunded_amount, payment.needs_reconciliation) == (
        "REFUNDED",
        Decimal("9.99"),
        False,
    )
    assert money_kept(paypal, order.payment.provider_order_id) == 0


def test_a_mismatched_capture_told_by_webhook_is_refunded(paypal, shopper):
    mug = ProductFactory(price=Decimal("10.00"), on_hand=3)
    order = start_order(user=shopper, lines=[(mug, 1)])
    paypal.approve(order.payment.provider_order_id)
    paypal.next_capture(
        order.payment.provider_order_id, "COMPLETED", amount={"value": "100.00", "currency_code": "USD"}
    )
    paypal.capture(order.payment.provider_order_id)  # captured; the shop only hears of it by webhook

    assert (
        deliver_webhook(paypal, order.payment.provider_order_id, "PAYMENT.CAPTURE.COMPLETED").value
        == "handled"
    )

    order = refreshed(order)
    assert (order.status, order.failure_reason, order.payment.status) == (
        "FAILED",
        "amount_mismatch",
        "REFUNDED",
    )
    assert money_kept(paypal, order.payment.provider_order_id) == 0
    assert available(mug) == 3


# --- Partial refunds ---------------------------------------------------------------------------------------


@pytest.fixture
def paid(paypal, shopper):
    mug = ProductFactory(price=Decimal("12.50"), on_hand=5)
    order = start_order(user=shopper, lines=[(mug, 2)])
    paypal.approve(order.payment.provider_order_id)
    return payment_capture(order_id=order.pk)


def test_a_partial_refund_keeps_the_payment_captured_with_the_amount_refunded(paypal, paid):
    provider_order_id = paid.payment.provider_order_id
    paypal.refund(paid.payment.capture_id, "5.00")  # from PayPal's dashboard

    assert deliver_webhook(paypal, provider_order_id, "PAYMENT.CAPTURE.REFUNDED").value == "handled"
    payment = Payment.objects.get(pk=paid.payment.pk)
    assert (payment.status, payment.refunded_amount) == ("SUCCESS", Decimal("5.00"))

    paypal.refund(paid.payment.capture_id, "7.50")
    deliver_webhook(paypal, provider_order_id, "PAYMENT.CAPTURE.REFUNDED")
    payment = Payment.objects.get(pk=paid.payment.pk)
    assert (payment.status, payment.refunded_amount) == ("SUCCESS", Decimal("12.50"))

    paypal.refund(paid.payment.capture_id)  # the rest
    refund_id = paypal_payments(paypal, provider_order_id)["refunds"][-1]["id"]
    deliver_webhook(paypal, provider_order_id, "PAYMENT.CAPTURE.REFUNDED")
    payment = Payment.objects.get(pk=paid.payment.pk)
    assert (payment.status, payment.refunded_amount, payment.refund_id) == (
        "REFUNDED",
        Decimal("25.00"),
        refund_id,
    )
    assert refreshed(paid).status == "SUCCESS"  # the goods were sold


def test_staff_refund_after_a_partial_refund_gives_back_the_rest(paypal, paid):
    paypal.refund(paid.payment.capture_id, "5.00")
    deliver_webhook(paypal, paid.payment.provider_order_id, "PAYMENT.CAPTURE.REFUNDED")

    payment = payment_refund(order_id=paid.pk)

    assert (payment.status, payment.refunded_amount) == ("REFUNDED", Decimal("25.00"))
    assert money_kept(paypal, paid.payment.provider_order_id) == 0


def test_the_payment_admin_shows_the_amount_refunded(paypal, paid, admin_client):
    paypal.refund(paid.payment.capture_id, "5.00")
    deliver_webhook(paypal, paid.payment.provider_order_id, "PAYMENT.CAPTURE.REFUNDED")

    listing = admin_client.get("/admin/payments/payment/").content.decode()
    assert "Refunded amount" in listing and "5.00" in listing
    change = admin_client.get(f"/admin/payments/payment/{paid.payment.pk}/change/").content.decode()
    assert "Refunded amount" in change and 'name="refunded_amount"' not in change


def test_the_return_page_tells_the_shopper_a_mismatched_payment_goes_back(paypal, shopper, client):
    client.force_login(shopper)
    mug = ProductFactory(price=Decimal("10.00"), on_hand=3)
    order = start_order(user=shopper, lines=[(mug, 1)])
    paypal.approve(order.payment.provider_order_id)
    paypal.next_capture(
        order.payment.provider_order_id, "COMPLETED", amount={"value": "1.00", "currency_code": "USD"}
    )

    response = client.get(f"/payments/paypal/return/?token={order.payment.provider_order_id}", follow=True)

    page = response.content.decode()
    assert "PayPal charged an amount that differs from your order&#x27;s total" in page
    assert "the whole payment goes back to your PayPal account" in page
    assert refreshed(order).failure_reason == "amount_mismatch"
