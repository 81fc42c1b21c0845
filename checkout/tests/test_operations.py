"""Staff's operations page, the email preview of an order, and the CSV export of the order list."""

import csv
import io
import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from checkout.audit import stock_audit_record
from inventory.tests.factories import ProductFactory
from notifications.models import EmailDelivery, OutboxEvent
from orders.models import Order
from orders.services import order_complete, order_fail, order_place

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("staff", "staff@example.com", "pw-staff-1"))
    return client


@pytest.fixture
def shop(user, other_user):
    mug = ProductFactory(name="Blue mug", on_hand=10)
    pending = order_place(user=user, lines=[{"product": mug.pk, "quantity": 3}], language="vi")
    paid = order_place(user=other_user, lines=[{"product": mug.pk, "quantity": 1}])
    order_complete(order_id=paid.pk, capture_id="CAP-1")
    for reason in ("payment_declined", "payment_declined", "cancelled_by_staff"):
        failed = order_place(user=user, lines=[{"product": mug.pk, "quantity": 1}])
        order_fail(order_id=failed.pk, reason=reason)
    return {"pending": pending, "paid": paid, "failed": failed}


def cell(page: str, css_class: str) -> str:
    return " ".join(
        re.sub(r"<[^>]+>", " ", re.search(rf'class="{css_class}">(.*?)</td>', page, re.S).group(1)).split()
    )


def test_the_operations_page_tells_how_the_shop_is_doing(staff_client, shop):
    EmailDelivery.objects.create(
        event_id=OutboxEvent.objects.filter(order=shop["failed"]).first().event_id,
        order=shop["failed"],
        type="order.failed",
        status="FAILED",
    )
    stock_audit_record(drifts=[])
    assert 'href="/admin/operations/"' in staff_client.get("/admin/").content.decode()

    page = staff_client.get("/admin/operations/").content.decode()

    assert cell(page, "pending-orders") == "1"
    assert cell(page, "held-units") == "3"
    assert "payment_declined (The payment was declined.): 2" in cell(page, "failed-today")
    assert "cancelled_by_staff (The shop cancelled the order.): 1" in cell(page, "failed-today")
    assert cell(page, "outbox-backlog").startswith(str(OutboxEvent.objects.filter(published_at=None).count()))
    assert cell(page, "dead-lettered") == "1"
    assert "inventory: release expired reservations" in page and "checkout: audit stock and orders" in page
    assert cell(page, "last-audit") == "every invariant holds"


def test_only_staff_see_the_operations_page(client, user):
    client.force_login(user)
    assert client.get("/admin/operations/").status_code == 302  # to the admin login


@pytest.mark.parametrize(
    ("kind", "language", "expected"),
    [
        ("order.succeeded", "en", "is confirmed"),
        ("order.succeeded", "vi", "đã được xác nhận"),
        ("order.failed", "en", "could not be completed"),
        ("order.failed", "vi", "Không thể hoàn tất"),
    ],
)
def test_staff_preview_an_orders_email_in_both_languages(staff_client, shop, kind, language, expected):
    order = shop["pending"]
    change = staff_client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert f"/admin/orders/order/{order.pk}/email-preview/" in change

    response = staff_client.get(
        f"/admin/orders/order/{order.pk}/email-preview/", {"type": kind, "language": language}
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert expected in page and "Blue mug" in page and 'sandbox srcdoc="' in page
    assert not OutboxEvent.objects.filter(order=order).exists()  # nothing recorded, nothing sent
    assert Order.objects.get(pk=order.pk).status == "PENDING"


def test_the_preview_refuses_what_it_does_not_know(staff_client, shop):
    url = f"/admin/orders/order/{shop['paid'].pk}/email-preview/"
    assert staff_client.get(url, {"type": "order.shipped"}).status_code == 404
    assert staff_client.get(url, {"language": "fr"}).status_code == 404
    assert staff_client.get("/admin/orders/order/999999/email-preview/").status_code == 404


def test_the_filtered_order_list_exports_as_csv(staff_client, shop, user):
    user.email = "=HYPERLINK(evil)@example.com"
    user.save()
    listing = staff_client.get("/admin/orders/order/", {"status__exact": "FAILED"}).content.decode()
    assert "/admin/orders/order/export.csv?status__exact=FAILED" in listing

    response = staff_client.get("/admin/orders/order/export.csv", {"status__exact": "FAILED"})

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 3 and {row["status"] for row in rows} == {"FAILED"}
    assert sorted(row["failure_reason"] for row in rows) == [
        "cancelled_by_staff",
        "payment_declined",
        "payment_declined",
    ]
    assert all(row["shopper_email"].startswith("'=") for row in rows)  # never a formula
    assert rows[0]["lines"] == "1 x Blue mug"


def test_the_export_needs_the_view_permission(django_user_model, shop):
    clerk = django_user_model.objects.create_user("clerk", password="pw-clerk-1", is_staff=True)
    client = Client()
    client.force_login(clerk)
    assert client.get("/admin/orders/order/export.csv").status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="view_order"))
    assert client.get("/admin/orders/order/export.csv").status_code == 200
