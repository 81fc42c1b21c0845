"""Staff admin of outcome emails: read-only pages, and a resend action that goes through services."""

import json

import pytest
from django.urls import reverse
from django.utils import timezone

from notifications.admin import EmailDeliveryInline
from notifications.delivery import email_send_order_outcome
from notifications.events import order_outcome_parse
from notifications.models import DeliveryStatus, EmailDelivery, OutboxEvent
from notifications.tests.factories import UserFactory, final_order
from orders.models import Order, OrderStatus
from orders.outcomes import order_outcome_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent():
    """A failed order whose email went out, its outbox event published."""
    order = final_order(status=OrderStatus.FAILED, reason="payment_declined")
    event = order_outcome_record(order=order)
    OutboxEvent.objects.filter(pk=event.pk).update(published_at=timezone.now())
    email_send_order_outcome(event=order_outcome_parse(json.dumps(event.payload)))
    return EmailDelivery.objects.get(event_id=event.event_id)


def test_pages_list_and_show_without_edit_controls(admin_client, sent):
    deliveries = admin_client.get(reverse("admin:notifications_emaildelivery_changelist"))
    events = admin_client.get(reverse("admin:notifications_outboxevent_changelist"))
    delivery_page = admin_client.get(reverse("admin:notifications_emaildelivery_change", args=[sent.pk]))
    event = OutboxEvent.objects.get(event_id=sent.event_id)
    event_page = admin_client.get(reverse("admin:notifications_outboxevent_change", args=[event.pk]))

    assert deliveries.status_code == events.status_code == 200
    assert sent.recipient in deliveries.content.decode()
    assert "Resend the selected emails" in deliveries.content.decode()
    assert "delete_selected" not in deliveries.content.decode()
    assert "delete_selected" not in events.content.decode()
    assert delivery_page.status_code == event_page.status_code == 200
    assert 'name="_save"' not in delivery_page.content.decode()
    assert "payment_declined" in event_page.content.decode()  # the payload, pretty-printed
    assert admin_client.get(reverse("admin:notifications_emaildelivery_add")).status_code == 403


def test_resend_action_resets_the_delivery_and_requeues_its_event(admin_client, sent):
    response = admin_client.post(
        reverse("admin:notifications_emaildelivery_changelist"),
        {"action": "resend_email", "_selected_action": [sent.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert f"#{sent.pk}: the email will be sent again." in response.content.decode()
    sent.refresh_from_db()
    assert (sent.status, sent.attempts, sent.sent_at) == (DeliveryStatus.PENDING, 0, None)
    assert OutboxEvent.objects.get(event_id=sent.event_id).published_at is None


def test_outbox_action_requeues_the_selected_event(admin_client, sent):
    event = OutboxEvent.objects.get(event_id=sent.event_id)

    admin_client.post(
        reverse("admin:notifications_outboxevent_changelist"),
        {"action": "resend_email", "_selected_action": [event.pk]},
    )

    event.refresh_from_db()
    sent.refresh_from_db()
    assert event.published_at is None
    assert sent.status == DeliveryStatus.PENDING


def test_resend_needs_the_change_permission(client, sent):
    from django.contrib.auth.models import Permission

    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_emaildelivery"))
    client.force_login(viewer)
    url = reverse("admin:notifications_emaildelivery_changelist")

    page = client.get(url)
    client.post(url, {"action": "resend_email", "_selected_action": [sent.pk]})

    assert page.status_code == 200
    assert "Resend the selected emails" not in page.content.decode()
    sent.refresh_from_db()
    assert sent.status == DeliveryStatus.SENT


def test_order_admin_shows_the_deliveries_inline(admin_client, sent):
    assert EmailDeliveryInline.fk_name == "order"
    assert EmailDeliveryInline.model is EmailDelivery

    page = admin_client.get(reverse("admin:orders_order_change", args=[sent.order_id]))

    assert page.status_code == 200
    html = page.content.decode()
    assert "outcome emails" in html.lower()
    assert sent.subject in html


def test_order_admin_resend_action_goes_through_the_notifications_service(admin_client, sent):
    response = admin_client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "resend_outcome_emails", "_selected_action": [sent.order_id]},
        follow=True,
    )

    assert response.status_code == 200
    sent.refresh_from_db()
    assert sent.status == DeliveryStatus.PENDING
    assert Order.objects.get(pk=sent.order_id).status == OrderStatus.FAILED
