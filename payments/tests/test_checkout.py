"""The PayPal checkout end to end: the shop's services and pages, the real SDK, the simulator."""

import threading
import time
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.messages import get_messages
from django.db import connection, transaction
from rest_framework.test import APIClient

from orders.lock_objects import order_lock
from orders.models import Order
from orders.services import order_cancel
from orders.tests.invariants import assert_invariants
from payments.errors import PaymentGatewayError, PaymentNotRefundable
from payments.expiry import payment_expire_overdue, payment_settle_expired
from payments.models import Payment
from payments.services import payment_capture, payment_refund, payment_start
from payments.tests.factories import ProductFactory, UserFactory, available, expire, place_order, start_order


def shop_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def press(paypal, order: Order, label: str) -> str:
    """The shopper presses a button on PayPal's page (no JavaScript): where PayPal sends them back."""
    page = requests.get(order.payment.approval_url, timeout=5)
    assert page.status_code == 200
    assert f">{label}</button>" in page.text
    answer = requests.post(
        order.payment.approval_url,
        data={"action": label.lower()},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 303
    return answer.headers["Location"]


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def logged_in(client, shopper):
    client.force_login(shopper)
    return client


@pytest.fixture
def mug(db):
    return ProductFactory(price=Decimal("12.50"), on_hand=10)


def refreshed(order: Order) -> Order:
    return Order.objects.select_related("payment").get(pk=order.pk)


# --- Start ---------------------------------------------------------------------------------------------


def test_start_creates_the_paypal_order_for_the_servers_total(paypal, shopper, mug, settings):
    tea = ProductFactory(price=Decimal("3.25"), on_hand=5)
    order = start_order(user=shopper, lines=[(mug, 2), (tea, 3)])
    payment = order.payment
    assert payment.provider_order_id
    assert payment.approval_url == f"{paypal.url}/checkoutnow?token={payment.provider_order_id}"
    assert [entry["operation"] for entry in payment.provider_responses] == ["create"]

    state = paypal.order(payment.provider_order_id)
    unit = state["order"]["purchase_units"][0]
    assert unit["amount"]["value"] == str(order.total) == "34.75"
    assert [(item["name"], item["quantity"]) for item in unit["items"]] == [(mug.name, "2"), (tea.name, "3")]
    assert state["return_url"] == f"{settings.SITE_URL}/payments/paypal/return/"
    assert state["cancel_url"] == f"{settings.SITE_URL}/payments/paypal/cancel/"
    # Starting again is harmless: the same PayPal order, no second call.
    calls = len(paypal.requests())
    assert payment_start(order_id=order.pk).provider_order_id == payment.provider_order_id
    assert len(paypal.requests()) == calls


@pytest.mark.django_db(transaction=True)
def test_api_order_amount_is_the_servers_total_whatever_the_client_sent(paypal):
    mug = ProductFactory(price=Decimal("12.50"), on_hand=10)
    client = APIClient()
    client.force_authenticate(UserFactory())
    priced = {
        "lines": [{"product": mug.pk, "quantity": 2, "unit_price": "0.01"}],
        "total": "0.01",
        "amount": "1",
    }
    refused = client.post("/api/orders/", priced, format="json")
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid")  # prices are not the client's
    assert not paypal.server.state.orders
    response = client.post("/api/orders/", {"lines": [{"product": mug.pk, "quantity": 2}]}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["total"] == "25.00"
    provider_order_id = urlsplit(body["payment"]["approval_url"]).query.split("token=")[1]
    unit = paypal.order(provider_order_id)["order"]["purchase_units"][0]
    assert unit["amount"] == {
        "currency_code": "USD",
        "value": "25.00",
        "breakdown": {"item_total": {"currency_code": "USD", "value": "25.00"}},
    }
    assert [(item["quantity"], item["unit_amount"]["value"]) for item in unit["items"]] == [("2", "12.50")]


def test_paypal_unreachable_at_create_fails_the_order_and_returns_the_stock(
    paypal, paypal_unreachable, shopper, mug, outcomes
):
    order = place_order(user=shopper, lines=[(mug, 3)])
    assert available(mug) == 7
    with pytest.raises(PaymentGatewayError) as error:
        payment_start(order_id=order.pk)
    assert error.value.code == "gateway_error"
    assert "PayPal could not be reached" in error.value.message
    assert "Nothing was charged" in error.value.message

    order = refreshed(order)
    assert (order.status, order.failure_reason, order.payment.status) == ("FAILED", "gateway_error", "FAILED")
    assert order.payment.provider_order_id is None
    assert order.payment.provider_responses[-1]["issue"] == "CONNECTION_ERROR"
    assert available(mug) == 10
    assert outcomes == [(order.pk, "FAILED", "FAILED")]
    assert_invariants({mug.pk: 10})


@pytest.mark.django_db(transaction=True)
def test_api_answers_502_gateway_error_when_paypal_is_unreachable(paypal, paypal_unreachable):
    mug = ProductFactory(on_hand=4)
    client = APIClient()
    client.force_authenticate(UserFactory())
    response = client.post("/api/orders/", {"lines": [{"product": mug.pk, "quantity": 1}]}, format="json")
    assert response.status_code == 502
    assert response.json()["code"] == "gateway_error"
    assert Order.objects.get().failure_reason == "gateway_error"
    assert available(mug) == 4


# --- Return and cancel ---------------------------------------------------------------------------------


def test_happy_path(paypal, logged_in, shopper, mug, outcomes):
    order = start_order(user=shopper, lines=[(mug, 2)])
    back = press(paypal, order, "Approve")
    assert shop_path(back).startswith(
        f"/payments/paypal/return/?token={order.payment.provider_order_id}&PayerID="
    )

    response = logged_in.get(shop_path(back))
    assert response.status_code == 302
    assert response["Location"] == order.get_absolute_url()
    assert messages_of(response) == ["Thank you! Your payment was received and your order is confirmed."]

    order = refreshed(order)
    capture = paypal.order(order.payment.provider_order_id)["order"]["purchase_units"][0]["payments"][
        "captures"
    ][0]
    assert (order.status, order.payment.status, order.payment.capture_id) == (
        "SUCCESS",
        "SUCCESS",
        capture["id"],
    )
    assert capture["status"] == "COMPLETED"
    assert available(mug) == 8
    assert outcomes == [(order.pk, "SUCCESS", "SUCCESS")]
    assert_invariants({mug.pk: 10})


def test_cancel_at_paypal_fails_the_order_and_returns_the_stock(paypal, logged_in, shopper, mug, outcomes):
    order = start_order(user=shopper, lines=[(mug, 4)])
    back = press(paypal, order, "Cancel")
    assert shop_path(back) == f"/payments/paypal/cancel/?token={order.payment.provider_order_id}"

    response = logged_in.get(shop_path(back))
    assert response.status_code == 302
    assert response["Location"] == order.get_absolute_url()
    assert "You cancelled the payment at PayPal" in messages_of(response)[0]
    order = refreshed(order)
    assert (order.status, order.failure_reason, order.payment.status) == (
        "FAILED",
        "payment_cancelled",
        "FAILED",
    )
    assert available(mug) == 10
    assert paypal.order(order.payment.provider_order_id)["capture_calls"] == 0
    # Coming back through the return URL afterwards captures nothing.
    logged_in.get(f"/payments/paypal/return/?token={order.payment.provider_order_id}")
    assert paypal.order(order.payment.provider_order_id)["capture_calls"] == 0
    assert outcomes == [(order.pk, "FAILED", "FAILED")]


def test_declined_payment_fails_the_order(paypal, logged_in, shopper, mug, outcomes):
    order = start_order(user=shopper, lines=[(mug, 1)])
    back = press(paypal, order, "Approve")
    paypal.decline_next_capture(order.payment.provider_order_id)

    response = logged_in.get(shop_path(back))
    assert response["Location"] == order.get_absolute_url()
    assert "PayPal declined the payment" in messages_of(response)[0]
    order = refreshed(order)
    assert (order.status, order.failure_reason, order.payment.status) == (
        "FAILED",
        "payment_declined",
        "FAILED",
    )
    assert order.payment.provider_responses[-1]["issue"] == "INSTRUMENT_DECLINED"
    assert available(mug) == 10
    assert outcomes == [(order.pk, "FAILED", "FAILED")]
    assert_invariants({mug.pk: 10})


def test_double_return_captures_once_with_one_outcome(paypal, logged_in, shopper, mug, outcomes):
    order = start_order(user=shopper, lines=[(mug, 3)])
    back = shop_path(press(paypal, order, "Approve"))

    first = logged_in.get(back)
    second = logged_in.get(back)
    assert first["Location"] == second["Location"] == order.get_absolute_url()
    # (The first message is still waiting in the session: the order page was not shown in between.)
    assert messages_of(second)[-1] == "Thank you! Your payment was received and your order is confirmed."
    assert paypal.order(order.payment.provider_order_id)["capture_calls"] == 1
    assert refreshed(order).status == "SUCCESS"
    assert available(mug) == 7
    assert outcomes == [(order.pk, "SUCCESS", "SUCCESS")]
    assert_invariants({mug.pk: 10})


@pytest.mark.django_db(transaction=True)
def test_concurrent_returns_capture_once(paypal, outcomes):
    mug = ProductFactory(on_hand=10)
    order = start_order(user=UserFactory(), lines=[(mug, 2)])
    paypal.approve(order.payment.provider_order_id)
    barrier = threading.Barrier(3)
    results, errors = [], []

    def shopper_returns():
        try:
            barrier.wait(timeout=10)
            results.append(payment_capture(order_id=order.pk).status)
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=shopper_returns) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert results == ["SUCCESS", "SUCCESS", "SUCCESS"]
    assert paypal.order(order.payment.provider_order_id)["capture_calls"] == 1
    assert outcomes == [(order.pk, "SUCCESS", "SUCCESS")]
    assert_invariants({mug.pk: 10})


@pytest.mark.django_db(transaction=True)
def test_capture_holds_the_orders_row_lock_while_paypal_has_not_answered(paypal):
    """Without that lock a sweep (or a cancel) fails an order whose capture is in flight, and the
    money stays at PayPal. Checked while PayPal holds the capture request, before any answer."""
    mug = ProductFactory(on_hand=3)
    order = start_order(user=UserFactory(), lines=[(mug, 1)])
    paypal.approve(order.payment.provider_order_id)
    expire(order)
    paypal.fail(1, mode="hold", match="/capture")
    errors = []

    def shopper_returns():
        try:
            payment_capture(order_id=order.pk)
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    capture = threading.Thread(target=shopper_returns)
    capture.start()
    try:
        wait_until(lambda: paypal.held() == 1)  # the capture request is at PayPal, unanswered
        with transaction.atomic():
            assert order_lock(order_id=order.pk, skip_locked=True) is None, "the order row is not locked"
        sweep = payment_expire_overdue()
        assert order.pk not in sweep.released + sweep.with_provider
        assert refreshed(order).status == "PENDING"
    finally:
        paypal.release()
        capture.join(timeout=30)
    assert not capture.is_alive() and errors == []
    assert refreshed(order).status == "SUCCESS"
    assert paypal.order(order.payment.provider_order_id)["capture_calls"] == 1
    assert_invariants({mug.pk: 3})


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_return_before_approval_keeps_the_order_pending(paypal, logged_in, shopper, mug):
    order = start_order(user=shopper, lines=[(mug, 1)])
    response = logged_in.get(f"/payments/paypal/return/?token={order.payment.provider_order_id}")
    assert response["Location"] == order.get_absolute_url()
    assert "not approved at PayPal yet" in messages_of(response)[0]
    assert refreshed(order).status == "PENDING"


def test_return_and_cancel_belong_to_the_orders_owner(paypal, client, shopper, mug):
    order = start_order(user=shopper, lines=[(mug, 1)])
    paypal.approve(order.payment.provider_order_id)
    token = order.payment.provider_order_id

    anonymous = client.get(f"/payments/paypal/return/?token={token}")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")

    client.force_login(UserFactory())
    assert client.get(f"/payments/paypal/return/?token={token}").status_code == 404
    assert client.get(f"/payments/paypal/cancel/?token={token}").status_code == 404
    client.force_login(shopper)
    assert client.get("/payments/paypal/return/?token=NOSUCHTOKEN").status_code == 404
    assert client.get("/payments/paypal/return/").status_code == 404
    assert paypal.order(token)["capture_calls"] == 0
    assert refreshed(order).status == "PENDING"


# --- PayPal unreachable at capture -----------------------------------------------------------------------


def test_paypal_unreachable_at_capture_leaves_the_order_pending_then_the_sweep_settles_it(
    paypal, logged_in, shopper, mug, outcomes
):
    order = start_order(user=shopper, lines=[(mug, 2)])
    back = shop_path(press(paypal, order, "Approve"))
    # PayPal captures, but its answer never reaches the shop.
    paypal.fail(1, mode="drop_response", match="/capture")

    response = logged_in.get(back)
    assert response["Location"] == order.get_absolute_url()
    assert "PayPal could not be reached to confirm your payment" in messages_of(response)[0]
    assert (refreshed(order).status, available(mug)) == ("PENDING", 8)
    assert outcomes == []

    expire(order)
    sweep = payment_expire_overdue()
    assert sweep.settled_with_provider == [order.pk]
    order = refreshed(order)
    paypal_capture = paypal.order(order.payment.provider_order_id)["order"]["purchase_units"][0]["payments"]
    assert (order.status, order.payment.capture_id) == ("SUCCESS", paypal_capture["captures"][0]["id"])
    assert paypal.order(order.payment.provider_order_id)["capture_calls"] == 1
    assert outcomes == [(order.pk, "SUCCESS", "SUCCESS")]
    assert_invariants({mug.pk: 10})


def test_paypal_failing_at_capture_then_the_return_is_retried(paypal, logged_in, shopper, mug):
    order = start_order(user=shopper, lines=[(mug, 1)])
    back = shop_path(press(paypal, order, "Approve"))
    paypal.fail(1, match="/capture")
    logged_in.get(back)
    assert refreshed(order).status == "PENDING"
    logged_in.get(back)  # the shopper reloads the page
    assert refreshed(order).status == "SUCCESS"
    assert paypal.order(order.payment.provider_order_id)["capture_calls"] == 1


# --- The expiry sweep --------------------------------------------------------------------------------------


def test_settle_expired_not_approved_fails_with_reservation_expired(paypal, shopper, mug, outcomes):
    order = start_order(user=shopper, lines=[(mug, 5)])
    expire(order)
    order = payment_settle_expired(order_id=order.pk)
    assert (order.status, order.failure_reason) == ("FAILED", "reservation_expired")
    assert available(mug) == 10
    assert paypal.order(order.payment.provider_order_id)["capture_calls"] == 0
    assert outcomes == [(order.pk, "FAILED", "FAILED")]


def test_settle_expired_approved_captures_and_completes(paypal, shopper, mug):
    order = start_order(user=shopper, lines=[(mug, 2)])
    paypal.approve(order.payment.provider_order_id)
    expire(order)
    assert payment_settle_expired(order_id=order.pk).status == "SUCCESS"
    assert paypal.order(order.payment.provider_order_id)["capture_calls"] == 1
    assert available(mug) == 8


def test_settle_expired_leaves_a_hold_that_has_not_expired(paypal, shopper, mug):
    order = start_order(user=shopper, lines=[(mug, 2)])
    assert payment_settle_expired(order_id=order.pk).status == "PENDING"
    assert not [entry for entry in paypal.requests() if entry["method"] == "GET"]


def test_settle_expired_with_paypal_unreachable_waits_then_gives_up_after_the_grace(
    paypal, shopper, mug, settings, outcomes
):
    settings.PAYPAL_SETTLE_GRACE_SECONDS = 600
    order = start_order(user=shopper, lines=[(mug, 2)])
    expire(order, seconds_ago=60)
    paypal.fail(1)
    with pytest.raises(PaymentGatewayError):
        payment_settle_expired(order_id=order.pk)
    assert (refreshed(order).status, available(mug)) == ("PENDING", 8)

    expire(order, seconds_ago=601)
    paypal.fail(1)
    order = payment_settle_expired(order_id=order.pk)
    assert (order.status, order.failure_reason) == ("FAILED", "reservation_expired")
    assert order.payment.provider_responses[-1]["issue"] == "SERVICE_UNAVAILABLE"
    assert available(mug) == 10
    assert outcomes == [(order.pk, "FAILED", "FAILED")]


def test_settle_expired_leaves_a_capture_held_for_review_pending(paypal, shopper, mug):
    order = start_order(user=shopper, lines=[(mug, 1)])
    paypal.approve(order.payment.provider_order_id)
    paypal.next_capture(order.payment.provider_order_id, "PENDING")
    expire(order)
    order = payment_settle_expired(order_id=order.pk)
    held = paypal.order(order.payment.provider_order_id)["capture_ids"][0]
    assert (order.status, order.payment.capture_id) == ("PENDING", held)
    assert available(mug) == 9


@pytest.mark.django_db(transaction=True)
def test_settle_expired_skips_an_order_locked_by_a_capture_in_flight(paypal):
    mug = ProductFactory(on_hand=3)
    order = start_order(user=UserFactory(), lines=[(mug, 1)])
    expire(order)
    locked, release = threading.Event(), threading.Event()

    def capture_in_flight():
        try:
            with transaction.atomic():
                order_lock(order_id=order.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=capture_in_flight)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        assert payment_settle_expired(order_id=order.pk) is None
    finally:
        release.set()
        holder.join(timeout=10)
    assert refreshed(order).status == "PENDING"
    assert payment_settle_expired(order_id=order.pk).status == "FAILED"


# --- Staff refund ------------------------------------------------------------------------------------------


def test_staff_refund_of_a_paid_order(paypal, shopper, mug):
    order = start_order(user=shopper, lines=[(mug, 1)])
    with pytest.raises(PaymentNotRefundable):
        payment_refund(order_id=order.pk)
    paypal.approve(order.payment.provider_order_id)
    payment_capture(order_id=order.pk)

    payment = payment_refund(order_id=order.pk)
    capture = paypal.order(order.payment.provider_order_id)["order"]["purchase_units"][0]["payments"]
    assert (payment.status, payment.refund_id) == ("REFUNDED", capture["refunds"][0]["id"])
    assert capture["captures"][0]["status"] == "REFUNDED"
    assert payment_refund(order_id=order.pk).refund_id == payment.refund_id  # no second refund
    assert refreshed(order).status == "SUCCESS"
    assert Payment.objects.get(pk=payment.pk).status == "REFUNDED"


def test_return_again_after_a_held_capture_was_released(paypal, logged_in, shopper, mug):
    order = start_order(user=shopper, lines=[(mug, 1)])
    back = shop_path(press(paypal, order, "Approve"))
    paypal.next_capture(order.payment.provider_order_id, "PENDING")
    response = logged_in.get(back)
    assert "PayPal is still processing your payment" in messages_of(response)[-1]
    assert refreshed(order).status == "PENDING"

    paypal.settle_capture(refreshed(order).payment.capture_id, "COMPLETED")
    logged_in.get(back)  # the capture answer is replayed (still PENDING); the order is read afresh
    assert refreshed(order).status == "SUCCESS"
    assert paypal.order(order.payment.provider_order_id)["capture_calls"] == 1


def test_a_payment_changed_while_its_paypal_order_was_made_keeps_both_records(paypal, shopper, mug):
    """payment_start records the PayPal order with one UPDATE conditional on the payment being as it
    read it; when something wrote the payment meanwhile (here a note), it records under the order's
    lock on the payment as it is now: nothing written by either is lost."""
    order = Order.objects.select_related("payment").get(pk=place_order(user=shopper, lines=[(mug, 1)]).pk)
    Payment.objects.filter(order=order).update(provider_responses=[{"operation": "meanwhile"}])

    payment = payment_start(order_id=order.pk, order=order)

    stored = Payment.objects.get(order=order)
    assert stored.provider_order_id and stored.provider_order_id == payment.provider_order_id
    assert stored.approval_url == payment.approval_url
    assert [entry["operation"] for entry in stored.provider_responses] == ["meanwhile", "create"]


def test_an_order_failed_while_its_paypal_order_was_made_still_records_it(paypal, shopper, mug):
    order = Order.objects.select_related("payment").get(pk=place_order(user=shopper, lines=[(mug, 1)]).pk)
    order_cancel(user=shopper, order_id=order.pk)  # after payment_start read the order, before it records

    payment_start(order_id=order.pk, order=order)

    stored = Payment.objects.get(order=order)
    assert stored.status == "FAILED" and stored.provider_order_id
    assert [entry["operation"] for entry in stored.provider_responses] == ["create"]
