"""A staff cancel in the admin reaches the shopper as the staff-cancel email, in the shopper's
language: admin action → outbox → the bundled Kafka broker → ``run_email_consumer`` → SMTP."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from inventory.tests.factories import ProductFactory
from notifications.models import OutboxEvent
from notifications.tests.helpers import publish_all
from orders.services import order_place

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED = {
    "en": {
        "reason": "We cancelled the order: we could not complete it.",
        "next": "If you still want these products, place the order again",
    },
    "vi": {
        "reason": "Chúng tôi đã hủy đơn hàng: chúng tôi không thể hoàn tất đơn này.",
        "next": "Nếu bạn vẫn muốn mua các sản phẩm này, hãy đặt lại đơn hàng",
    },
}


@pytest.mark.parametrize("language", ["en", "vi"])
def test_a_staff_cancel_emails_the_staff_cancel_text_in_the_shoppers_language(
    email_pipeline, smtp_server, django_user_model, user, language
):
    staff = django_user_model.objects.create_superuser("staff", "staff@example.com", "pw-staff-1")
    order = order_place(
        user=user, lines=[{"product": ProductFactory(on_hand=3).pk, "quantity": 1}], language=language
    )
    client = Client()
    client.force_login(staff)
    client.post(
        "/admin/orders/order/",
        {"action": "cancel_pending_orders", "_selected_action": [order.pk], "post": "yes"},
    )
    event = OutboxEvent.objects.get(order=order)
    assert event.payload["reason"]["code"] == "cancelled_by_staff"
    assert event.payload["reason"]["message"] == EXPECTED[language]["reason"]
    publish_all([event])

    call_command("run_email_consumer", max_messages=1, idle_timeout=15.0, stdout=StringIO())

    (message,) = smtp_server.wait_for(1)
    assert message["To"] == user.email and message["Content-Language"] == language
    bodies = [part.get_content() for part in message.walk() if not part.is_multipart()]
    assert len(bodies) == 2  # text and HTML
    for body in bodies:
        assert EXPECTED[language]["reason"] in body
        assert EXPECTED[language]["next"] in body
        assert "You cancelled" not in body and "Bạn đã hủy" not in body
