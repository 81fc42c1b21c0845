"""The consumer's side of Kafka: the email of each outcome event, sent once per event id whatever
Kafka redelivers, and staff's "send it again".

The email is rendered from the message alone (``notifications.emails``); the database is read and
written only for the delivery record, which de-duplicates and tells staff what happened.
"""

from __future__ import annotations

import enum
import smtplib
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from notifications import emails
from notifications.errors import (
    DeliveryNotFound,
    EmailNotSent,
    EmailUndeliverable,
    EventNotFound,
    InvalidMessage,
    UnknownOrder,
)
from notifications.events import OrderOutcomeEvent
from notifications.models import DeliveryStatus, EmailDelivery, OutboxEvent
from notifications.outbox import error_text, outbox_event_requeue


class DeliveryResult(enum.Enum):
    SENT = "sent"
    DUPLICATE = "duplicate"  # this event's email was sent (or skipped) before: nothing sent now
    SKIPPED = "skipped"  # the shopper has no email address


class _SmtpFailure(enum.Enum):
    UNREACHABLE = "unreachable"  # no answer: the mail waits, however long, nothing is wrong with it
    TEMPORARY = "temporary"  # 4xx and the like: tried again, at most EMAIL_MAX_ATTEMPTS times
    PERMANENT = "permanent"  # 5xx: trying again cannot help


def _smtp_failure(error: Exception) -> _SmtpFailure:
    # smtplib's errors are OSErrors too: the specific classes first.
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _message in error.recipients.values()]
        return _SmtpFailure.PERMANENT if codes and min(codes) >= 500 else _SmtpFailure.TEMPORARY
    if isinstance(error, (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError)):
        return _SmtpFailure.UNREACHABLE
    if isinstance(error, smtplib.SMTPResponseException):
        return _SmtpFailure.PERMANENT if error.smtp_code >= 500 else _SmtpFailure.TEMPORARY
    if isinstance(error, smtplib.SMTPException):
        return _SmtpFailure.TEMPORARY
    return _SmtpFailure.UNREACHABLE  # OSError: refused, reset, timed out, no route


def _delivery_for(event: OrderOutcomeEvent) -> EmailDelivery:
    # The delivery record refers to its order (the order admin lists it): one that does not exist is
    # poison. Asked through the relation, which needs no import of the orders app.
    orders = EmailDelivery._meta.get_field("order").related_model.objects
    if not orders.filter(pk=event.order_id).exists():
        raise UnknownOrder(f"Order #{event.order_id} does not exist.", order_id=event.order_id)
    # The unique event_id makes this one row, however many consumers get the event at once.
    delivery, _created = EmailDelivery.objects.get_or_create(
        event_id=event.event_id,
        defaults={
            "order_id": event.order_id,
            "type": event.type,
            "recipient": event.recipient[:254],
            "language": event.language[:8],
        },
    )
    if delivery.order_id != event.order_id:
        raise InvalidMessage(
            f"Event {event.event_id} was already delivered for order #{delivery.order_id}, "
            f"not #{event.order_id}."
        )
    return delivery


def email_send_order_outcome(*, event: OrderOutcomeEvent) -> DeliveryResult:
    """Send the email of ``event`` unless it was sent before; the email consumer's one call per message.

    Raises ``UnknownOrder`` (a poison message), ``EmailNotSent`` (try again later: the server is
    unreachable, or refused for now and tries are left) or ``EmailUndeliverable`` (refused for good,
    or ``EMAIL_MAX_ATTEMPTS`` times: the caller dead-letters the message).

    The delivery row stays locked while the mail server is talked to. That lock guards nothing but
    this event's email, and it is what keeps two consumers that got the same event from both
    sending it: the second waits, then finds it sent. A consumer that dies mid-send loses its
    connection and so its lock at once. The only duplicate left is a crash between the server's
    "250 OK" and the commit: email cannot be sent inside a database transaction.
    """
    delivery = _delivery_for(event)
    if delivery.status in (DeliveryStatus.SENT, DeliveryStatus.SKIPPED):
        return DeliveryResult.DUPLICATE
    failure: EmailNotSent | EmailUndeliverable | None = None
    with transaction.atomic():
        delivery = EmailDelivery.objects.select_for_update().get(pk=delivery.pk)
        if delivery.status in (DeliveryStatus.SENT, DeliveryStatus.SKIPPED):
            return DeliveryResult.DUPLICATE
        if delivery.status == DeliveryStatus.FAILED:
            # Dead-lettered before, but the dead-letter publish may not have gone through.
            raise EmailUndeliverable(delivery.last_error or None)
        if not event.recipient:
            delivery.status = DeliveryStatus.SKIPPED
            delivery.last_error = "The shopper has no email address."
            delivery.save(update_fields=["status", "last_error", "updated_at"])
            return DeliveryResult.SKIPPED
        rendered = emails.order_outcome_render(event=event)
        delivery.recipient = event.recipient[:254]
        delivery.language = rendered.language
        delivery.subject = rendered.subject[:255]
        try:
            emails.order_outcome_message(event=event, rendered=rendered).send()
        except (smtplib.SMTPException, OSError) as error:
            kind = _smtp_failure(error)
            delivery.last_error = error_text(error)
            if kind != _SmtpFailure.UNREACHABLE:
                delivery.attempts += 1
            if kind == _SmtpFailure.PERMANENT or (
                kind == _SmtpFailure.TEMPORARY and delivery.attempts >= settings.EMAIL_MAX_ATTEMPTS
            ):
                delivery.status = DeliveryStatus.FAILED
                failure = EmailUndeliverable(
                    f"{delivery.last_error} (after {delivery.attempts} attempts)", kind=kind.value
                )
            else:
                failure = EmailNotSent(delivery.last_error, kind=kind.value, attempts=delivery.attempts)
        else:
            delivery.status = DeliveryStatus.SENT
            delivery.attempts += 1
            delivery.last_error = ""
            delivery.sent_at = timezone.now()
        delivery.save()
    if failure is not None:
        raise failure  # after the commit: the failed try is on record
    return DeliveryResult.SENT


# --- Staff: send it again ---------------------------------------------------------------------------


def _delivery_reset(delivery: EmailDelivery) -> None:
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts = 0
    delivery.last_error = ""
    delivery.sent_at = None
    delivery.save(update_fields=["status", "attempts", "last_error", "sent_at", "updated_at"])


@transaction.atomic
def event_resend(*, event_id: uuid.UUID) -> OutboxEvent:
    """Publish the event again and let its email be sent again (sent, dead-lettered or skipped alike)."""
    # Lock order: the delivery row, then the outbox row (the consumer locks only the first, the
    # relay only the second).
    delivery = EmailDelivery.objects.select_for_update().filter(event_id=event_id).first()
    if delivery is not None:
        _delivery_reset(delivery)
    return outbox_event_requeue(event_id=event_id)


@transaction.atomic
def email_delivery_resend(*, delivery_id: int) -> OutboxEvent:
    """Staff: send the email of this delivery again: the delivery starts afresh and its event is
    published again."""
    delivery = EmailDelivery.objects.filter(pk=delivery_id).first()
    if delivery is None:
        raise DeliveryNotFound(delivery_id=delivery_id)
    return event_resend(event_id=delivery.event_id)


@transaction.atomic
def outbox_event_resend(*, event_id: uuid.UUID) -> OutboxEvent:
    """Staff: publish this outbox event again and send its email again."""
    if not OutboxEvent.objects.filter(event_id=event_id).exists():
        raise EventNotFound(event_id=str(event_id))
    return event_resend(event_id=event_id)
