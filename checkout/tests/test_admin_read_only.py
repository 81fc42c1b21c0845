"""Holds, payments, orders, webhook events, outbox events, email deliveries, the stock ledger and
audits are records written by services: the admin shows them and changes none of them, whatever
form or crafted POST a staff member sends."""

import pytest
from django.forms.models import model_to_dict
from django.test import Client

from checkout.models import StockAudit
from inventory.models import ReservedStock, StockMovement
from inventory.tests.factories import ProductFactory
from notifications.models import EmailDelivery, OutboxEvent
from orders.models import Order
from orders.services import order_fail, order_place
from payments.models import Payment, WebhookEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("staff", "staff@example.com", "pw-staff-1"))
    return client


@pytest.fixture
def records(user):
    mug = ProductFactory(on_hand=5)
    pending = order_place(user=user, lines=[{"product": mug.pk, "quantity": 2}])
    failed = order_place(user=user, lines=[{"product": mug.pk, "quantity": 1}])
    order_fail(order_id=failed.pk, reason="payment_declined")
    return {
        "inventory/reservedstock": ReservedStock.objects.get(order=pending),
        "inventory/stockmovement": StockMovement.objects.filter(product=mug).first(),
        "orders/order": pending,
        "payments/payment": pending.payment,
        "payments/webhookevent": WebhookEvent.objects.create(
            event_id="WH-1", event_type="CHECKOUT.ORDER.APPROVED", resource_id="X", payload={"id": "WH-1"}
        ),
        "notifications/outboxevent": OutboxEvent.objects.get(order=failed),
        "notifications/emaildelivery": EmailDelivery.objects.create(
            event_id=OutboxEvent.objects.get(order=failed).event_id,
            order=failed,
            type="order.failed",
            recipient="alice@example.com",
        ),
        "checkout/stockaudit": StockAudit.objects.create(drift_count=0),
    }


def snapshot(obj) -> dict:
    return model_to_dict(type(obj).objects.get(pk=obj.pk))


HOSTILE_FIELDS = {
    "status": "SUCCESS",
    "quantity": "1",
    "delta": "50",
    "amount": "0.01",
    "capture_id": "FORGED",
    "failure_reason": "payment_declined",
    "expires_at_0": "2099-01-01",
    "expires_at_1": "00:00:00",
    "processed_at_0": "2099-01-01",
    "recipient": "mallory@example.com",
    "drift_count": "7",
    "_save": "Save",
}


@pytest.mark.parametrize(
    "model",
    [
        "inventory/reservedstock",
        "inventory/stockmovement",
        "orders/order",
        "payments/payment",
        "payments/webhookevent",
        "notifications/outboxevent",
        "notifications/emaildelivery",
        "checkout/stockaudit",
    ],
)
def test_records_are_read_only_in_the_admin(staff_client, records, model):
    obj = records[model]
    before = snapshot(obj)
    base = f"/admin/{model}/"

    change_page = staff_client.get(f"{base}{obj.pk}/change/")
    assert change_page.status_code == 200
    html = change_page.content.decode()
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    assert staff_client.get(f"{base}add/").status_code == 403
    assert staff_client.post(f"{base}add/", HOSTILE_FIELDS).status_code == 403
    assert staff_client.post(f"{base}{obj.pk}/change/", HOSTILE_FIELDS).status_code == 403
    assert staff_client.post(f"{base}{obj.pk}/delete/", {"post": "yes"}).status_code == 403
    listing = staff_client.get(base).content.decode()
    assert "delete_selected" not in listing
    staff_client.post(base, {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"})

    assert snapshot(obj) == before


def test_order_actions_need_their_own_permissions(django_user_model, records):
    """A staff member who may only look sees no action; the POST of one is refused too."""
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_order"))
    client = Client()
    client.force_login(viewer)
    order = records["orders/order"]

    listing = client.get("/admin/orders/order/").content.decode()
    assert "cancel_pending_orders" not in listing and "refund_payments" not in listing
    client.post(
        "/admin/orders/order/",
        {"action": "cancel_pending_orders", "_selected_action": [order.pk], "post": "yes"},
    )
    assert Order.objects.get(pk=order.pk).status == "PENDING"

    viewer.user_permissions.add(Permission.objects.get(codename="cancel_order"))
    client.force_login(viewer)
    assert "cancel_pending_orders" in client.get("/admin/orders/order/").content.decode()
    assert "refund_payments" not in client.get("/admin/orders/order/").content.decode()
    client.post(
        "/admin/orders/order/",
        {"action": "cancel_pending_orders", "_selected_action": [order.pk], "post": "yes"},
    )
    assert Order.objects.get(pk=order.pk).failure_reason == "cancelled_by_staff"
    assert Payment.objects.get(order=order).status == "FAILED"


def test_refund_actions_need_the_refund_permission(django_user_model, records):
    from django.contrib.auth.models import Permission

    from payments.models import PaymentStatus

    payment = records["payments/payment"]
    Payment.objects.filter(pk=payment.pk).update(status=PaymentStatus.SUCCESS, capture_id="CAP-1")
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-1", is_staff=True)
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_order", "view_payment", "cancel_order"])
    )
    client = Client()
    client.force_login(viewer)
    for url, action, pk in [
        ("/admin/orders/order/", "refund_payments", payment.order_id),
        ("/admin/payments/payment/", "refund_through_paypal", payment.pk),
    ]:
        assert action not in client.get(url).content.decode()
        client.post(url, {"action": action, "_selected_action": [pk], "post": "yes"})
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCESS  # no refund was even tried
