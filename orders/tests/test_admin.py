"""The staff admin of orders: only staff get in; staff find orders and act on them through services."""

import re
import types

import pytest
from django.db.models import F
from django.test import Client

from inventory.models import Stock
from inventory.tests.factories import ProductFactory
from orders.models import Order
from orders.services import order_complete, order_fail, order_place
from payments.models import Payment

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/orders/order/"


@pytest.fixture
def staff_client(django_user_model):
    staff = django_user_model.objects.create_superuser(
        username="staff", email="staff@example.com", password="pw-staff-1"
    )
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def orders(user, other_user):
    mug = ProductFactory(name="Blue mug", on_hand=10)
    pending = order_place(user=user, lines=[{"product": mug.pk, "quantity": 2}])
    paid = order_place(user=other_user, lines=[{"product": mug.pk, "quantity": 1}])
    order_complete(order_id=paid.pk, capture_id="CAP-1")
    failed = order_place(user=user, lines=[{"product": mug.pk, "quantity": 1}])
    order_fail(order_id=failed.pk, reason="payment_declined")
    return types.SimpleNamespace(pending=pending, paid=paid, failed=failed, mug=mug)


def listed_ids(response):
    return {order.pk for order in response.context["cl"].result_list}


def test_shoppers_never_reach_the_admin(client, user, orders):
    client.force_login(user)
    for url in ("/admin/", CHANGELIST, f"{CHANGELIST}{orders.pending.pk}/change/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    response = client.post(
        CHANGELIST, {"action": "cancel_pending_orders", "_selected_action": [orders.pending.pk]}
    )
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert Order.objects.get(pk=orders.pending.pk).status == "PENDING"


def test_staff_find_orders_by_search(staff_client, orders):
    orders.paid.payment.provider_order_id = "5O190127TN364715T"
    orders.paid.payment.save()
    searches = {
        str(orders.pending.transaction_id): {orders.pending.pk},
        str(orders.pending.transaction_id)[:8]: {orders.pending.pk},
        "bob@example.com": {orders.paid.pk},
        "alice": {orders.pending.pk, orders.failed.pk},
        "5O190127TN364715T": {orders.paid.pk},
        "no-such-thing": set(),
    }
    for term, expected in searches.items():
        response = staff_client.get(CHANGELIST, {"q": term})
        assert response.status_code == 200
        assert listed_ids(response) == expected, term


def test_staff_filter_orders(staff_client, orders):
    assert listed_ids(staff_client.get(CHANGELIST, {"status__exact": "PENDING"})) == {orders.pending.pk}
    assert listed_ids(staff_client.get(CHANGELIST, {"failure_reason__exact": "payment_declined"})) == {
        orders.failed.pk
    }
    assert listed_ids(staff_client.get(CHANGELIST, {"payment_status": "SUCCESS"})) == {orders.paid.pk}
    page = staff_client.get(CHANGELIST).content.decode()
    assert "By created at" in page and "Low stock" not in page
    assert "Blue mug" not in page  # lines are on the change page, not the list


def test_change_page_shows_lines_payment_and_holds_read_only(staff_client, orders):
    response = staff_client.get(f"{CHANGELIST}{orders.pending.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Blue mug" in page  # the line
    assert str(orders.pending.transaction_id) in page
    inlines = [
        " ".join(h.split())
        for h in re.findall(r'<h2 id="[a-z_]+-heading" class="inline-heading">(.*?)</h2>', page, re.S)
    ]
    assert inlines == ["Order lines", "Payment", "Stock holds", "Outcome emails"]
    assert 'name="_save"' not in page  # nothing to save: every field is read-only
    for field in ("total", "currency", "status", "failure_reason"):
        assert f'name="{field}"' not in page, field  # money and state are never edited by hand
    assert 'name="lines-0-quantity"' not in page


def test_staff_cannot_add_or_delete_orders(staff_client, orders):
    assert staff_client.get(f"{CHANGELIST}add/").status_code == 403
    assert staff_client.get(f"{CHANGELIST}{orders.pending.pk}/delete/").status_code == 403
    page = staff_client.get(CHANGELIST).content.decode()
    assert "delete_selected" not in page


def test_cancel_action_asks_first_then_cancels_pending_orders_as_staff(staff_client, orders):
    selected = {"action": "cancel_pending_orders", "_selected_action": [orders.pending.pk, orders.paid.pk]}
    confirmation = staff_client.post(CHANGELIST, selected)
    assert confirmation.status_code == 200
    page = confirmation.content.decode()
    assert "Yes, cancel them" in page
    assert f"Order #{orders.pending.pk}" in page and f"Order #{orders.paid.pk}" in page
    assert "20.00 USD" in page  # the pending order's amount (2 × 10.00)
    assert Order.objects.get(pk=orders.pending.pk).status == "PENDING"  # nothing happened yet

    response = staff_client.post(CHANGELIST, {**selected, "post": "yes"}, follow=True)
    page = response.content.decode()
    assert f"Order #{orders.pending.pk}: cancelled" in page
    assert f"Order #{orders.paid.pk}: not pending, left as it is." in page
    pending = Order.objects.get(pk=orders.pending.pk)
    assert (pending.status, pending.failure_reason) == ("FAILED", "cancelled_by_staff")
    assert pending.payment.status == "FAILED"
    assert Order.objects.get(pk=orders.paid.pk).status == "SUCCESS"
    stock = Stock.objects.get(pk=orders.mug.pk)
    assert (stock.on_hand, stock.reserved) == (9, 0)  # the paid unit left; the held two came back


def test_refund_action_asks_first_then_refunds_captured_payments_only(staff_client, orders, monkeypatch):
    refunded = []

    def payment_refund(*, order_id):
        refunded.append(order_id)
        Payment.objects.filter(order_id=order_id).update(status="REFUNDED", refunded_amount=F("amount"))
        return Payment.objects.get(order_id=order_id)

    monkeypatch.setattr("payments.admin.payment_refund", payment_refund)
    selected = {
        "action": "refund_payments",
        "_selected_action": [orders.pending.pk, orders.paid.pk, orders.failed.pk],
    }
    confirmation = staff_client.post(CHANGELIST, selected)
    assert "Yes, refund them" in confirmation.content.decode() and refunded == []

    page = staff_client.post(CHANGELIST, {**selected, "post": "yes"}, follow=True).content.decode()
    assert refunded == [orders.paid.pk]
    assert f"Order #{orders.paid.pk}: 10.00 USD refunded through PayPal." in page
    assert f"Order #{orders.pending.pk}: no captured payment to refund." in page
    assert f"Order #{orders.failed.pk}: no captured payment to refund." in page


def test_refund_action_reports_service_errors(staff_client, orders, monkeypatch):
    from core.errors import ShopError

    def payment_refund(*, order_id):
        raise ShopError("PayPal said no.")

    monkeypatch.setattr("payments.admin.payment_refund", payment_refund)
    response = staff_client.post(
        CHANGELIST,
        {"action": "refund_payments", "_selected_action": [orders.paid.pk], "post": "yes"},
        follow=True,
    )
    assert f"Order #{orders.paid.pk}: PayPal said no." in response.content.decode()


def test_admin_in_vietnamese(staff_client, orders):
    staff_client.cookies["django_language"] = "vi"
    page = staff_client.get(CHANGELIST).content.decode()
    assert "Chờ thanh toán" in page and "Đã thanh toán" in page
    assert "Hủy các đơn đang chờ đã chọn (trả hàng về kho)" in page
    assert "Hoàn tiền cho các đơn hàng đã chọn" in page


def test_product_admin_shows_stock_and_filters_low_stock(staff_client):
    plenty = ProductFactory(name="Plenty", on_hand=50)
    low = ProductFactory(name="Almost gone", on_hand=6)
    Stock.objects.filter(pk=low.pk).update(reserved=3)
    gone = ProductFactory(name="Gone", on_hand=0)
    response = staff_client.get("/admin/inventory/product/", {"o": "8"})  # ordered by available
    assert response.status_code == 200
    assert [p.name for p in response.context["cl"].result_list] == ["Gone", "Almost gone", "Plenty"]
    low_only = staff_client.get("/admin/inventory/product/", {"stock_level": "low"}).context["cl"].result_list
    assert {p.pk for p in low_only} == {low.pk, gone.pk}
    out_only = staff_client.get("/admin/inventory/product/", {"stock_level": "out"}).context["cl"].result_list
    assert {p.pk for p in out_only} == {gone.pk}
    assert plenty.pk not in {p.pk for p in low_only}


def test_resend_action_requeues_the_outcome_email(staff_client, orders):
    from django.utils import timezone

    from notifications.models import OutboxEvent

    OutboxEvent.objects.update(published_at=timezone.now())  # as if the relay had sent them
    response = staff_client.post(
        CHANGELIST,
        {"action": "resend_outcome_emails", "_selected_action": [orders.failed.pk, orders.pending.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert f"Order #{orders.failed.pk}: the email will be sent again." in page
    assert f"Order #{orders.pending.pk}: still pending: no outcome email yet." in page
    failed_event = OutboxEvent.objects.filter(order=orders.failed).latest("id")
    assert failed_event.published_at is None  # back in the outbox: the relay publishes it again
    assert OutboxEvent.objects.get(order=orders.paid).published_at is not None  # not selected
    assert not OutboxEvent.objects.filter(order=orders.pending).exists()


def test_a_refund_that_another_click_already_made_is_not_reported_twice(staff_client, orders, monkeypatch):
    def payment_refund(*, order_id):  # the other click won: nothing more is refunded by this one
        return Payment.objects.get(order_id=order_id)

    monkeypatch.setattr("payments.admin.payment_refund", payment_refund)
    response = staff_client.post(
        CHANGELIST,
        {"action": "refund_payments", "_selected_action": [orders.paid.pk], "post": "yes"},
        follow=True,
    )
    assert f"Order #{orders.paid.pk}: refunded already, nothing more to refund." in response.content.decode()
