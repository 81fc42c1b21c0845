"""Render the outcome email of an event: subject, plain text and HTML, in the shopper's language.

Templates: ``notifications/email/<order_succeeded|order_failed>_{subject.txt,body.txt,body.html}``.
The Vietnamese strings live in this app's own catalog (``notifications/locale/vi``).
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from notifications.events import (
    REASON_TEXT,
    UNKNOWN_REASON_TEXT,
    OrderOutcomeEvent,
    not_charged_text,
    order_outcome_parse,
    refunded_text,
)
from notifications.events import order_outcome_message as outcome_event_payload
from notifications.models import EventType
from notifications.selectors import order_payment_refunded
from orders.models import FailureReason, OrderStatus

TEMPLATE_BY_TYPE = {
    EventType.ORDER_SUCCEEDED: "order_succeeded",
    EventType.ORDER_FAILED: "order_failed",
}


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    language: str


def _order_url(order_id: int) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("order-detail", kwargs={"pk": order_id})


def order_outcome_render(*, event: OrderOutcomeEvent, refunded: bool = False) -> RenderedEmail:
    """Render the email of ``event`` in the shopper's language (English when it is not one we have)."""
    language = event.language if event.language in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE
    payload = event.payload
    reason_text, next_steps = REASON_TEXT.get(event.reason_code, UNKNOWN_REASON_TEXT)
    template = TEMPLATE_BY_TYPE[event.type]
    with translation.override(language):
        context = {
            "order": payload["order"],
            "user": payload["user"],
            "event_id": str(event.event_id),
            "order_url": _order_url(event.order_id),
            "reason_code": event.reason_code,
            "reason_text": reason_text,
            "next_steps": next_steps,
            "refunded": refunded,
            "refunded_text": refunded_text(event.reason_code),
            "not_charged_text": not_charged_text(event.reason_code),
            "LANGUAGE_CODE": language,
        }
        subject = render_to_string(f"notifications/email/{template}_subject.txt", context)
        text = render_to_string(f"notifications/email/{template}_body.txt", context)
        html = render_to_string(f"notifications/email/{template}_body.html", context)
    # A header must be one line.
    return RenderedEmail(subject=" ".join(subject.split()), text=text, html=html, language=language)


def order_outcome_message(*, event: OrderOutcomeEvent, rendered: RenderedEmail) -> EmailMultiAlternatives:
    """The multipart (text + HTML) message of a rendered outcome email."""
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[event.recipient],
        headers={
            "X-Shop-Event-Id": str(event.event_id),
            "X-Shop-Order-Id": str(event.order_id),
            "Content-Language": rendered.language,
        },
    )
    message.attach_alternative(rendered.html, "text/html")
    return message


def order_outcome_preview(*, order, event_type: str, language: str, reason: str = "") -> RenderedEmail:
    """The email ``order`` would get (or got) for an outcome, in ``language``: for staff to read before
    and after. Built from the same message and templates as the real one; nothing is recorded or sent."""
    preview = copy.copy(order)
    preview.language = language
    if event_type == EventType.ORDER_SUCCEEDED:
        preview.status, preview.failure_reason = OrderStatus.SUCCESS, ""
    else:
        preview.status = OrderStatus.FAILED
        preview.failure_reason = reason or order.failure_reason or FailureReason.PAYMENT_DECLINED
    refunded = order_payment_refunded(order_id=order.pk) and event_type == EventType.ORDER_FAILED
    message = outcome_event_payload(
        order=preview,
        event_id=uuid.uuid4(),
        occurred_at=timezone.now(),
        refunded=refunded,
        lines=list(order.lines.all()),
    )
    return order_outcome_render(event=order_outcome_parse(json.dumps(message)), refunded=refunded)
