"""Staff see payments and webhook events read-only, and refund through PayPal from the admin."""

import pytest

from payments.models import Payment, PaymentStatus, WebhookEvent
from payments.services import payment_capture
from payments.tests.factories import ProductFactory, start_order


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("staff", "staff@example.com", "pw-staff-1"))
    return client


@pytest.fixture
def paid_order(paypal, shopper):
    order = start_order(user=shopper, lines=[(ProductFactory(on_hand=5), 1)])
    paypal.approve(order.payment.provider_order_id)
    return payment_capture(order_id=order.pk)


def test_payments_are_listed_and_read_only(staff_client, paid_order):
    payment = paid_order.payment
    listing = staff_client.get("/admin/payments/payment/")
    assert listing.status_code == 200
    assert payment.provider_order_id in listing.content.decode()

    change = staff_client.get(f"/admin/payments/payment/{payment.pk}/change/")
    assert change.status_code == 200
    html = change.content.decode()
    assert payment.capture_id in html
    for field in ("amount", "currency", "status", "capture_id", "provider_order_id"):
        assert f'name="{field}"' not in html
    assert staff_client.get("/admin/payments/payment/add/").status_code == 403
    assert (
        staff_client.post(f"/admin/payments/payment/{payment.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert Payment.objects.filter(pk=payment.pk).exists()


def test_refund_action_asks_first_then_refunds_through_paypal(staff_client, paid_order, paypal):
    selected = {"action": "refund_through_paypal", "_selected_action": [paid_order.payment.pk]}
    confirmation = staff_client.post("/admin/payments/payment/", selected)
    assert confirmation.status_code == 200
    assert "Yes, refund them" in confirmation.content.decode()
    assert f"{paid_order.payment.amount} USD" in confirmation.content.decode()
    assert Payment.objects.get(pk=paid_order.payment.pk).status == PaymentStatus.SUCCESS

    response = staff_client.post("/admin/payments/payment/", {**selected, "post": "yes"}, follow=True)
    assert response.status_code == 200
    assert f"Payment #{paid_order.payment.pk}: {paid_order.payment.amount} USD refunded through PayPal." in (
        response.content.decode()
    )
    payment = Payment.objects.get(pk=paid_order.payment.pk)
    assert payment.status == PaymentStatus.REFUNDED
    assert paypal.order(payment.provider_order_id)["order"]["purchase_units"][0]["payments"]["refunds"]


def test_webhook_events_are_read_only(staff_client):
    event = WebhookEvent.objects.create(
        event_id="WH-1", event_type="CHECKOUT.ORDER.APPROVED", resource_id="ABC", payload={"id": "WH-1"}
    )
    assert "WH-1" in staff_client.get("/admin/payments/webhookevent/").content.decode()
    change = staff_client.get(f"/admin/payments/webhookevent/{event.pk}/change/")
    assert change.status_code == 200
    assert 'name="event_type"' not in change.content.decode()
    assert staff_client.get("/admin/payments/webhookevent/add/").status_code == 403
