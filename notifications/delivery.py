"""The consumer's side of Kafka: the email of each outcome event, sent once per event id whatever
Kafka redelivers, and staff's "send it again".

The email is rendered from the message alone (``notifications.emails``); the database is read and
written only for the delivery record, which de-duplicates and tells staff what happened.
"""

from __future__ import annotations

import enum
import functools
import logging
import smtplib
import uuid

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
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

logger = logging.getLogger(__name__)


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


def _found_closed(error: Exception) -> bool:
    """Whether ``error`` says the connection was closed (not that it timed out: after a timeout, the
    server may yet have taken the email). smtplib reports both as ``SMTPServerDisconnected``."""
    closed = isinstance(error, (smtplib.SMTPServerDisconnected, ConnectionError))
    return closed and not isinstance(error.__context__, TimeoutError)


class Mailer:
    """The consumer's SMTP connection, kept open from one email to the next.

    Opened at the first email (Django's email backend: ``get_connection()`` once, then ``open()``).
    After an error it is closed, and the next email opens a new one. A kept connection found closed
    (the server dropped it while idle, or restarted) is opened afresh once for the same email: what
    reaches the caller is the mail server's own answer (a refusal), or the error of a new connection.
    """

    def __init__(self):
        self._connection = None

    def send(self, message: EmailMessage) -> None:
        reused = self._connection is not None
        try:
            self._send(message)
        except (smtplib.SMTPException, OSError) as error:
            self.close()
            if not (reused and _found_closed(error)):
                raise
            logger.info("the kept SMTP connection failed (%s): sending on a new one", error_text(error))
            try:
                self._send(message)
            except (smtplib.SMTPException, OSError):
                self.close()
                raise

    def _send(self, message: EmailMessage) -> None:
        if self._connection is None:
            backend = get_connection(fail_silently=False)
            backend.open()
            self._connection = backend
        self._connection.send_messages([message])

    def close(self) -> None:
        backend, self._connection = self._connection, None
        if backend is not None:
            try:
                backend.close()
            except Exception:  # closing a broken connection may fail in many ways
                logger.debug("closing the SMTP connection failed", exc_info=True)


class _OneShotMailer:
    """A connection per email (Django's ``EmailMessage.send()``), for callers without a ``Mailer``."""

    def send(self, message: EmailMessage) -> None:
        message.send()


# Every column of a new delivery row (the insert names them all: model defaults are not the database's).
_CONCRETE_FIELDS = (
    "event_id",
    "order",
    "type",
    "recipient",
    "language",
    "subject",
    "status",
    "attempts",
    "last_error",
    "created_at",
    "updated_at",
    "sent_at",
)
_UPDATED_AFTER_SENDING = [
    "recipient",
    "language",
    "subject",
    "status",
    "attempts",
    "last_error",
    "sent_at",
    "updated_at",
]


@functools.cache
def _delivery_insert_sql() -> str:
    # Names from the models' metadata, quoted; every value is a parameter.
    quote_name, meta = connection.ops.quote_name, EmailDelivery._meta
    orders = meta.get_field("order").related_model._meta
    table, orders_table = quote_name(meta.db_table), quote_name(orders.db_table)
    columns = ", ".join(quote_name(meta.get_field(name).column) for name in _CONCRETE_FIELDS)
    values = ", ".join(["%s"] * len(_CONCRETE_FIELDS))
    event_id, pk, order_pk = (quote_name(f.column) for f in (meta.get_field("event_id"), meta.pk, orders.pk))
    return (
        # Sent with the insert, in the same round trip: see _delivery_lock.
        "SET LOCAL synchronous_commit TO OFF; "  # noqa: S608
        f"INSERT INTO {table} ({columns}) VALUES ({values}) "
        f"ON CONFLICT ({event_id}) DO NOTHING "
        f"RETURNING {pk}, EXISTS (SELECT 1 FROM {orders_table} WHERE {order_pk} = %s)"
    )


def _delivery_lock(event: OrderOutcomeEvent) -> EmailDelivery:
    """The event's delivery row, inserted when new, locked until the caller's transaction ends.

    One statement for a new event: the insert (its row is this transaction's until it commits: a
    second consumer's insert of the same event waits, then finds it), which also asks whether the
    order exists (the foreign key is checked only at the commit, after the email was sent). Two
    for an event seen before: the insert that does nothing, then ``SELECT ... FOR UPDATE``.

    The transaction commits without waiting for its WAL to reach the disk (``synchronous_commit``
    off for it alone: the wait was most of a message's time). A crash of the database server can
    then lose the last fraction of a second of delivery records, and only those: what they lose is
    the knowledge that an email was sent, so the event may be emailed again (redelivered, or
    published again by the reconciliation), never an email. Nothing else is written here.
    """
    delivery = EmailDelivery(
        event_id=event.event_id,
        order_id=event.order_id,
        type=event.type,
        recipient=event.recipient[:254],
        language=event.language[:8],
    )
    params = []
    for name in _CONCRETE_FIELDS:
        field = EmailDelivery._meta.get_field(name)
        params.append(field.get_db_prep_save(field.pre_save(delivery, add=True), connection))
    with connection.cursor() as cursor:
        cursor.execute(_delivery_insert_sql(), [*params, event.order_id])
        inserted = cursor.fetchone()
    if inserted is not None:
        delivery.pk, order_exists = inserted
        if not order_exists:
            # The caller's transaction rolls the row back: nothing is left of the message.
            raise UnknownOrder(f"Order #{event.order_id} does not exist.", order_id=event.order_id)
        return delivery
    delivery = EmailDelivery.objects.select_for_update().get(event_id=event.event_id)
    if delivery.order_id != event.order_id:
        raise InvalidMessage(
            f"Event {event.event_id} was already delivered for order #{delivery.order_id}, "
            f"not #{event.order_id}."
        )
    return delivery


def email_send_order_outcome(*, event: OrderOutcomeEvent, mailer: Mailer | None = None) -> DeliveryResult:
    """Send the email of ``event`` unless it was sent before; the email consumer's one call per message.
    ``mailer`` is the consumer's kept SMTP connection (without one, the email gets a connection of its
    own).

    Raises ``UnknownOrder`` (a poison message), ``EmailNotSent`` (try again later: the server is
    unreachable, or refused for now and tries are left) or ``EmailUndeliverable`` (refused for good,
    or ``EMAIL_MAX_ATTEMPTS`` times: the caller dead-letters the message).

    One transaction: the delivery row is inserted (or found) and locked, the email sent, the row
    updated, committed. The row stays locked while the mail server is talked to. That lock guards
    nothing but this event's email, and it is what keeps two consumers that got the same event from
    both sending it: the second waits, then finds it sent. A consumer that dies mid-send loses its
    connection and so its lock at once (and a row it had just inserted: the event is as new). The
    only duplicate left is a crash (or a lost connection to the database) between the server's
    "250 OK" and the commit: email cannot be sent inside a database transaction.
    """
    mailer = mailer or _OneShotMailer()
    failure: EmailNotSent | EmailUndeliverable | None = None
    with transaction.atomic():
        delivery = _delivery_lock(event)
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
            mailer.send(emails.order_outcome_message(event=event, rendered=rendered))
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
        delivery.save(update_fields=_UPDATED_AFTER_SENDING)
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
