"""Render the outcome email of an event: subject, plain text and HTML, in the shopper's language.

Templates: ``notifications/email/<order_succeeded|order_failed>_{subject.txt,body.txt,body.html}``.
The Vietnamese strings live in this app's own catalog (``notifications/locale/vi``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import translation

from notifications.events import OrderOutcomeEvent
from notifications.models import EventType

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


def _order_url(order: dict) -> str:
    # Messages of schema 1 carried no URL: the shop's order page, as it was then.
    return order.get("url") or f"{settings.SITE_URL.rstrip('/')}/orders/{order['id']}/"


def order_outcome_render(*, event: OrderOutcomeEvent) -> RenderedEmail:
    """Render the email of ``event`` in the shopper's language (English when it is not one we have),
    from the message alone: its sentences were written in that language when the outcome was recorded."""
    language = event.language if event.language in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE
    payload = event.payload
    reason = payload.get("reason") or {}
    refunded = bool(payload.get("refunded"))
    template = TEMPLATE_BY_TYPE[event.type]
    with translation.override(language):
        context = {
            "order": payload["order"],
            "user": payload["user"],
            "event_id": str(event.event_id),
            "order_url": _order_url(payload["order"]),
            "reason_code": event.reason_code,
            # Schema 1 had only ``message``: what happened, with the refund sentence when refunded.
            "reason_text": reason.get("happened", reason.get("message", "")),
            "next_steps": reason.get("next_steps", ""),
            "refunded": refunded and "refund_note" in reason,
            "refunded_text": reason.get("refund_note", ""),
            "not_charged_text": reason.get("not_charged_note", ""),
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
