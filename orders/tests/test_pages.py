"""The shopper's order pages: list, detail with live status, JSON status, cancel."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from inventory.models import Stock
from inventory.tests.factories import ProductFactory
from orders.models import Order
from orders.services import order_complete, order_fail, order_place

pytestmark = pytest.mark.django_db


@pytest.fixture
def shopper(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def order(user):
    mug = ProductFactory(name="Blue mug", price="12.50", on_hand=5)
    cap = ProductFactory(name="Cap", price="3.00", on_hand=5)
    return order_place(
        user=user, lines=[{"product": mug.pk, "quantity": 2}, {"product": cap.pk, "quantity": 1}]
    )


def test_pages_need_login(client, order):
    for url in ("/orders/", f"/orders/{order.pk}/", f"/orders/{order.pk}/status/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    response = client.post(f"/orders/{order.pk}/cancel/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert Order.objects.get(pk=order.pk).status == "PENDING"


def test_order_list_shows_only_my_orders(shopper, order, other_user):
    mine = shopper.get("/orders/").content.decode()
    theirs = order_place(user=other_user, lines=[{"product": order.lines.first().product_id, "quantity": 1}])
    page = shopper.get("/orders/").content.decode()
    assert f"Order #{order.pk}" in mine and f"Order #{order.pk}" in page
    assert f"Order #{theirs.pk}" not in page and f"/orders/{theirs.pk}/" not in page
    assert "28.00 USD" in page and "Pending payment" in page
    assert "2 × Blue mug" in page


def test_empty_order_list(shopper):
    assert "You have not placed any orders yet." in shopper.get("/orders/").content.decode()


def test_anybody_elses_order_is_404(order, other_user):
    intruder = Client()
    intruder.force_login(other_user)
    for url in (f"/orders/{order.pk}/", f"/orders/{order.pk}/status/", "/orders/999999/"):
        assert intruder.get(url).status_code == 404, url
    assert intruder.post(f"/orders/{order.pk}/cancel/").status_code == 404
    assert Order.objects.get(pk=order.pk).status == "PENDING"


def test_pending_order_page(shopper, order):
    response = shopper.get(f"/orders/{order.pk}/")
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    page = response.content.decode()
    assert f"Order #{order.pk}" in page and "Pending payment" in page
    assert "Blue mug" in page and "25.00 USD" in page and "28.00 USD" in page
    assert str(order.transaction_id) in page
    # the hold's countdown, the refresh without JavaScript and the polling hook with it
    assert "Time left" in page and 'role="timer"' in page
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in page
    assert f'data-order-status-url="/orders/{order.pk}/status/"' in page
    # the next step and the cancel button (a CSRF-protected POST form)
    assert "Complete the payment at PayPal before the time runs out" in page
    assert f'action="/orders/{order.pk}/cancel/"' in page and "Cancel order" in page
    assert 'name="csrfmiddlewaretoken"' in page


def test_pending_order_links_to_paypal_once_started(shopper, order):
    order.payment.provider_order_id = "PP-1"
    order.payment.approval_url = "http://paypal.test/approve/PP-1"
    order.payment.save()
    page = shopper.get(f"/orders/{order.pk}/").content.decode()
    assert 'href="http://paypal.test/approve/PP-1"' in page and "Pay with PayPal" in page


def test_countdown_counts_from_reserved_until(shopper, order):
    Order.objects.filter(pk=order.pk).update(reserved_until=timezone.now() + timedelta(seconds=125))
    page = shopper.get(f"/orders/{order.pk}/").content.decode()
    assert ">2:0" in page  # 2:05 or 2:04 left, depending on the clock
    Order.objects.filter(pk=order.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))
    page = shopper.get(f"/orders/{order.pk}/").content.decode()
    assert "The time to pay is up." in page and 'role="timer"' not in page


def test_paid_order_page_is_final(shopper, order):
    order_complete(order_id=order.pk, capture_id="CAP-1")
    page = shopper.get(f"/orders/{order.pk}/").content.decode()
    assert "Paid" in page and "we are preparing your order" in page
    assert "http-equiv" not in page and "data-order-status-url" not in page and "Cancel order" not in page


@pytest.mark.parametrize(
    ("reason", "shown", "next_step"),
    [
        ("payment_declined", "The payment was declined.", "Try again with another payment method"),
        ("payment_cancelled", "The payment was cancelled at PayPal.", "You can order them again."),
        ("reservation_expired", "its hold expired", "not completed in time"),
        ("gateway_error", "PayPal could not be reached.", "try again in a few minutes"),
        ("cancelled_by_shopper", "You cancelled the order.", "went back on sale"),
        ("cancelled_by_staff", "The shop cancelled the order.", "you can order the items again"),
        ("amount_mismatch", "PayPal charged an amount that differs", "being refunded to your PayPal account"),
    ],
)
def test_failed_order_shows_reason_and_next_step(shopper, order, reason, shown, next_step):
    order_fail(order_id=order.pk, reason=reason)
    page = shopper.get(f"/orders/{order.pk}/").content.decode()
    assert "Failed" in page and shown in page and next_step in page
    assert "Cancel order" not in page


def test_status_json(shopper, order):
    body = shopper.get(f"/orders/{order.pk}/status/").json()
    assert body["id"] == order.pk and body["status"] == "PENDING" and body["is_final"] is False
    assert body["failure_reason"] is None and 0 < body["seconds_left"] <= 900
    order_fail(order_id=order.pk, reason="payment_declined")
    body = shopper.get(f"/orders/{order.pk}/status/").json()
    assert (body["status"], body["failure_reason"], body["is_final"], body["seconds_left"]) == (
        "FAILED",
        "payment_declined",
        True,
        0,
    )


def test_cancel_a_pending_order_returns_the_stock(shopper, order):
    product_ids = list(order.lines.values_list("product_id", flat=True))
    response = shopper.post(f"/orders/{order.pk}/cancel/", follow=True)
    assert response.redirect_chain == [(f"/orders/{order.pk}/", 302)]
    page = response.content.decode()
    assert "Your order was cancelled. Nothing was charged." in page
    assert "You cancelled the order." in page
    order.refresh_from_db()
    assert (order.status, order.failure_reason) == ("FAILED", "cancelled_by_shopper")
    assert list(Stock.objects.filter(pk__in=product_ids).values_list("reserved", flat=True)) == [0, 0]


def test_cancel_a_final_order_says_so(shopper, order):
    order_complete(order_id=order.pk)
    response = shopper.post(f"/orders/{order.pk}/cancel/", follow=True)
    assert "This order is no longer pending, so it cannot be cancelled." in response.content.decode()
    assert Order.objects.get(pk=order.pk).status == "SUCCESS"


def test_cancel_needs_post_and_csrf(user, order):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.get(f"/orders/{order.pk}/cancel/").status_code == 405
    assert strict.post(f"/orders/{order.pk}/cancel/").status_code == 403
    assert Order.objects.get(pk=order.pk).status == "PENDING"


def test_messages_from_the_paypal_landing_are_shown(shopper, order):
    """The PayPal return/cancel views redirect here with a django message: it is shown."""
    shopper.post("/cart/999/remove/")  # any view that leaves a message and redirects
    page = shopper.get(f"/orders/{order.pk}/").content.decode()
    assert '<ul class="messages" role="status" aria-live="polite">' in page
    assert '<li class="info">That product was not in your cart.</li>' in page


def test_order_pages_in_vietnamese(shopper, order):
    shopper.cookies["django_language"] = "vi"
    page = shopper.get("/orders/").content.decode()
    assert "Đơn hàng của tôi" in page and f"Đơn hàng #{order.pk}" in page and "Chờ thanh toán" in page
    assert "28,00 USD" in page
    page = shopper.get(f"/orders/{order.pk}/").content.decode()
    assert "Thời gian còn lại" in page and "Hủy đơn hàng" in page and "Tổng cộng" in page
    assert "Hàng đang được giữ cho bạn." in page
    order_fail(order_id=order.pk, reason="payment_declined")
    page = shopper.get(f"/orders/{order.pk}/").content.decode()
    assert "Không thành công" in page and "Thanh toán bị từ chối." in page


def test_paypal_landing_message_in_vietnamese(shopper, order, paypal, settings):
    from payments.services import payment_start

    settings.SITE_URL = "http://testserver"
    payment = payment_start(order_id=order.pk)
    paypal.approve(payment.provider_order_id)
    shopper.cookies["django_language"] = "vi"
    response = shopper.get("/payments/paypal/return/", {"token": payment.provider_order_id}, follow=True)
    assert response.redirect_chain == [(f"/orders/{order.pk}/", 302)]
    page = response.content.decode()
    assert "Cảm ơn bạn! Chúng tôi đã nhận được thanh toán và đơn hàng của bạn đã được xác nhận." in page
    assert "Đã thanh toán" in page


def test_refunded_order_says_the_money_went_back(shopper, order):
    from payments.models import PaymentStatus

    order_complete(order_id=order.pk, capture_id="CAP-1")
    order.payment.refresh_from_db()
    order.payment.status = PaymentStatus.REFUNDED
    order.payment.save()
    page = shopper.get(f"/orders/{order.pk}/").content.decode()
    assert "The payment was refunded." in page
    assert "The payment was refunded to your PayPal account." in page
    assert "we are preparing your order" not in page
