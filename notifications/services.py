"""Writes of the notifications app: the outbox of order outcomes, its relay to Kafka, and the email of
each outcome event (sent once per event id, whatever Kafka redelivers).

The checkout calls ``outbox_record_order_outcome`` inside the transaction that makes an order final:
the event is a row of that transaction, so it exists exactly when the outcome does, and it leaves
the process only after the commit (the relay thread, or the beat sweep if that thread cannot).
"""

from __future__ import annotations

import enum
import json
import logging
import smtplib
import uuid
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from core.logs import request_id_get
from notifications import emails, kafka_client
from notifications.errors import (
    DeliveryNotFound,
    EmailNotSent,
    EmailUndeliverable,
    EventNotFound,
    InvalidMessage,
    OrderNotFinal,
    UnknownOrder,
)
from notifications.events import REQUEST_ID_HEADER, OrderOutcomeEvent, event_type_for, order_outcome_message
from notifications.models import DeliveryStatus, EmailDelivery, OutboxEvent
from notifications.relay import relay
from notifications.selectors import (
    order_payment_refunded,
    orders_payment_refunded,
    outbox_has_unpublished,
    outbox_unpublished,
)
from orders.errors import OrderNotFound
from orders.models import Order, OrderLine

logger = logging.getLogger(__name__)

LAST_ERROR_MAX_CHARS = 2000


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:LAST_ERROR_MAX_CHARS]


# --- The outbox ----------------------------------------------------------------------------------


def _relay_after_commit() -> None:
    if settings.OUTBOX_PUBLISH_ON_COMMIT and kafka_client.is_configured():
        # robust: whatever happens to the wake-up, the caller's commit has happened and stands.
        transaction.on_commit(relay.wake, robust=True)


def outbox_record_order_outcome(*, order: Order) -> OutboxEvent:
    """Record the final outcome of ``order`` for its email, in the caller's transaction.

    ``order`` must be SUCCESS or FAILED (with its ``failure_reason``); call it again after a late
    capture of a failed order was refunded, and the email says so. Nothing leaves the process here:
    after the commit the relay publishes the event; if the transaction rolls back, no event existed.
    """
    (event,) = outbox_record_order_outcomes(orders=[order])
    return event


def outbox_record_order_outcomes(*, orders: list[Order]) -> list[OutboxEvent]:
    """``outbox_record_order_outcome`` for many final orders at once (e.g. a batch of expired orders):
    four queries whatever their number. Raises ``OrderNotFinal`` before writing anything."""
    orders = list(orders)
    if not orders:
        return []
    types = [event_type_for(order) for order in orders]  # OrderNotFinal for a pending order
    order_ids = [order.pk for order in orders]
    lines: dict[int, list[OrderLine]] = defaultdict(list)
    for line in OrderLine.objects.filter(order_id__in=order_ids).order_by("order_id", "id"):
        lines[line.order_id].append(line)
    emails_by_user = dict(
        get_user_model().objects.filter(pk__in={order.user_id for order in orders}).values_list("pk", "email")
    )
    refunded = orders_payment_refunded(order_ids=order_ids)
    now = timezone.now()
    request_id = request_id_get() or ""  # the request's, the Celery task's, or none
    events = []
    for order, event_type in zip(orders, types, strict=True):
        event_id = uuid.uuid4()
        payload = order_outcome_message(
            order=order,
            event_id=event_id,
            occurred_at=now,
            refunded=order.pk in refunded,
            lines=lines[order.pk],
            email=emails_by_user.get(order.user_id, ""),
        )
        events.append(
            OutboxEvent(
                event_id=event_id,
                type=event_type,
                order=order,
                key=str(order.pk),
                payload=payload,
                request_id=request_id,
            )
        )
    OutboxEvent.objects.bulk_create(events)
    _relay_after_commit()
    return events


def outbox_publish_pending(*, batch_size: int | None = None) -> int:
    """Publish the unpublished outbox rows to ``KAFKA_EMAIL_TOPIC`` (key: order id); return how many.

    Rows are taken in id order with SKIP LOCKED, so relays running at once (the thread of each web
    process, the beat sweep) never publish the same row together, and marked published only once the
    broker acknowledged them (idempotent producer, acks=all). A broker that cannot be reached leaves
    the rows for the next run. With ``KAFKA_BOOTSTRAP_SERVERS`` empty nothing is published.
    """
    if not kafka_client.is_configured() or not outbox_has_unpublished():
        return 0
    batch_size = batch_size or settings.OUTBOX_PUBLISH_BATCH_SIZE
    published = 0
    while True:
        try:
            # Connect before any row is locked: an unreachable broker costs no transaction.
            kafka_client.producer_get()
            done, complete = _outbox_publish_batch(batch_size=batch_size)
        except kafka_client.KafkaError as error:
            logger.warning("outbox: Kafka is unreachable (%s); the rows wait for the next run", error)
            break
        published += done
        if not complete or done < batch_size:
            break
    if published:
        logger.info("outbox: published %d events to %s", published, settings.KAFKA_EMAIL_TOPIC)
    return published


@transaction.atomic
def _outbox_publish_batch(*, batch_size: int) -> tuple[int, bool]:
    rows = list(outbox_unpublished().select_for_update(skip_locked=True)[:batch_size])
    if not rows:
        return 0, True
    results = kafka_client.publish(
        topic=settings.KAFKA_EMAIL_TOPIC,
        messages=[
            (
                row.key,
                json.dumps(row.payload, ensure_ascii=False, separators=(",", ":")).encode(),
                {REQUEST_ID_HEADER: row.request_id},
            )
            for row in rows
        ],
    )
    acknowledged = [row.pk for row, error in zip(rows, results, strict=True) if error is None]
    for row, error in zip(rows, results, strict=True):
        if error is None:  # one line per event, under the id of the request that recorded it
            logger.info(
                "outbox: published event %s (%s, order %s)",
                row.event_id,
                row.type,
                row.order_id,
                extra={"request_id": row.request_id or None},
            )
    OutboxEvent.objects.filter(pk__in=acknowledged).update(
        published_at=timezone.now(), attempts=F("attempts") + 1, last_error=""
    )
    failed = [(row, error) for row, error in zip(rows, results, strict=True) if error is not None]
    for row, error in failed:
        OutboxEvent.objects.filter(pk=row.pk).update(
            attempts=F("attempts") + 1, last_error=_error_text(error)
        )
    if failed:
        logger.warning("outbox: %d of %d events not acknowledged: %s", len(failed), len(rows), failed[0][1])
    return len(acknowledged), not failed


def _outbox_requeue(*, event_id: uuid.UUID, order: Order) -> OutboxEvent:
    """Publish the event ``event_id`` again (the same event, hence the same email content)."""
    event = OutboxEvent.objects.select_for_update().filter(event_id=event_id).first()
    if event is None:  # an event that did not come from this outbox: rebuild it from the order
        if not order.is_final:
            raise OrderNotFinal(order_id=order.pk)
        event = OutboxEvent.objects.create(
            event_id=event_id,
            type=event_type_for(order),
            order=order,
            key=str(order.pk),
            request_id=request_id_get() or "",
            payload=order_outcome_message(
                order=order,
                event_id=event_id,
                occurred_at=timezone.now(),
                refunded=order_payment_refunded(order_id=order.pk),
            ),
        )
    else:
        event.published_at = None
        event.last_error = ""
        event.save(update_fields=["published_at", "last_error"])
    _relay_after_commit()
    return event


def _delivery_reset(delivery: EmailDelivery) -> None:
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts = 0
    delivery.last_error = ""
    delivery.sent_at = None
    delivery.save(update_fields=["status", "attempts", "last_error", "sent_at", "updated_at"])


def _event_resend(*, event_id: uuid.UUID, order: Order) -> OutboxEvent:
    # Lock order: the delivery row, then the outbox row (the consumer locks only the first, the
    # relay only the second).
    delivery = EmailDelivery.objects.select_for_update().filter(event_id=event_id).first()
    if delivery is not None:
        _delivery_reset(delivery)
    return _outbox_requeue(event_id=event_id, order=order)


@transaction.atomic
def email_delivery_resend(*, delivery_id: int) -> OutboxEvent:
    """Staff: send the email of this delivery again (sent, dead-lettered or skipped alike): the
    delivery starts afresh and its event is published again."""
    delivery = EmailDelivery.objects.select_related("order").filter(pk=delivery_id).first()
    if delivery is None:
        raise DeliveryNotFound(delivery_id=delivery_id)
    return _event_resend(event_id=delivery.event_id, order=delivery.order)


@transaction.atomic
def outbox_event_resend(*, event_id: uuid.UUID) -> OutboxEvent:
    """Staff: publish this outbox event again and send its email again."""
    event = OutboxEvent.objects.select_related("order").filter(event_id=event_id).first()
    if event is None:
        raise EventNotFound(event_id=str(event_id))
    return _event_resend(event_id=event.event_id, order=event.order)


@transaction.atomic
def email_resend_order_outcome(*, order_id: int) -> OutboxEvent:
    """Staff: send the latest outcome email of this order again (recorded now if it never was)."""
    order = Order.objects.select_related("user").filter(pk=order_id).first()
    if order is None:
        raise OrderNotFound()
    if not order.is_final:
        raise OrderNotFinal(order_id=order_id)
    latest = OutboxEvent.objects.filter(order=order).order_by("-id").first()
    if latest is None:
        return outbox_record_order_outcome(order=order)
    return _event_resend(event_id=latest.event_id, order=order)


# --- Reconciliation and retention ------------------------------------------------------------------


def outbox_reconcile(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Publish again the events that Kafka acknowledged more than ``EMAIL_RECONCILE_AFTER_SECONDS``
    ago but that no consumer has recorded a delivery for: the broker may have lost them (the bundled
    one keeps messages in memory). The consumer de-duplicates by event id, so an event that was only
    late is not emailed twice. Returns how many events were put back in the outbox and published."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.EMAIL_RECONCILE_AFTER_SECONDS)
    kept = now - timedelta(days=settings.OUTBOX_RETENTION_DAYS)
    undelivered = (
        OutboxEvent.objects.filter(published_at__lte=stale, published_at__gt=kept)
        .exclude(Exists(EmailDelivery.objects.filter(event_id=OuterRef("event_id"))))
        .order_by("id")
    )
    requeued, last_id = 0, 0
    while True:
        ids = list(undelivered.filter(id__gt=last_id).values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        last_id = ids[-1]
        requeued += OutboxEvent.objects.filter(id__in=ids, published_at__lte=stale).update(
            published_at=None, last_error="published again: no delivery record"
        )
    if requeued:
        logger.warning("outbox: %d published events have no delivery record; publishing them again", requeued)
        outbox_publish_pending()
    return requeued


def outbox_purge(*, now: datetime | None = None, batch_size: int = 1000) -> tuple[int, int]:
    """Delete, in batches, published outbox events and finished email deliveries older than
    ``OUTBOX_RETENTION_DAYS``; answers how many of each. Unpublished events and deliveries still
    being tried are kept whatever their age."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.OUTBOX_RETENTION_DAYS)
    events = _delete_in_batches(OutboxEvent.objects.filter(published_at__lt=cutoff), batch_size)
    deliveries = _delete_in_batches(
        EmailDelivery.objects.filter(updated_at__lt=cutoff).exclude(status=DeliveryStatus.PENDING), batch_size
    )
    if events or deliveries:
        logger.info("outbox: deleted %d events and %d deliveries older than %s", events, deliveries, cutoff)
    return events, deliveries


def _delete_in_batches(queryset, batch_size: int) -> int:
    deleted = 0
    while True:
        ids = list(queryset.order_by("id").values_list("id", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += queryset.model.objects.filter(id__in=ids).delete()[0]


# --- Emails --------------------------------------------------------------------------------------


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
    order = Order.objects.filter(pk=event.order_id).only("pk").first()
    if order is None:
        raise UnknownOrder(f"Order #{event.order_id} does not exist.", order_id=event.order_id)
    # The unique event_id makes this one row, however many consumers get the event at once.
    delivery, _created = EmailDelivery.objects.get_or_create(
        event_id=event.event_id,
        defaults={
            "order": order,
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
        rendered = emails.order_outcome_render(
            event=event, refunded=order_payment_refunded(order_id=event.order_id)
        )
        delivery.recipient = event.recipient[:254]
        delivery.language = rendered.language
        delivery.subject = rendered.subject[:255]
        try:
            emails.order_outcome_message(event=event, rendered=rendered).send()
        except (smtplib.SMTPException, OSError) as error:
            kind = _smtp_failure(error)
            delivery.last_error = _error_text(error)
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
