"""The outbox: events recorded in the transaction that justifies them, published to Kafka after it
committed, and the relay that publishes them.

A domain (``orders.outcomes``) builds an event's message and calls ``outbox_record`` inside its own
transaction: the event is a row of that transaction, so it exists exactly when the outcome does, and
nothing leaves the process before the commit. After the commit one daemon thread per process (the
relay) publishes the new rows, so the committing request never waits on, nor fails because of, the
broker; what it cannot publish (broker down, process killed) the beat task ``notifications: publish
outbox`` publishes later. Reconciliation publishes again what the broker acknowledged and then lost;
retention deletes old rows. The outbox knows nothing of what its events are about.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from core.logs import request_id_get
from notifications import kafka_client
from notifications.errors import EventNotFound
from notifications.events import REQUEST_ID_HEADER
from notifications.models import DeliveryStatus, EmailDelivery, OutboxEvent
from notifications.selectors import outbox_has_unpublished, outbox_unpublished

logger = logging.getLogger(__name__)

LAST_ERROR_MAX_CHARS = 2000


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:LAST_ERROR_MAX_CHARS]


# --- The relay -------------------------------------------------------------------------------------


class OutboxRelayThread:
    def __init__(self):
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self.runs = 0  # completed publish runs, for tests and debugging

    def wake(self) -> None:
        """Ask for a publish run soon; starts the thread on first use (and again in a forked child)."""
        with self._lock:
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._pid = os.getpid()
                self._wake = threading.Event()
                self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
                self._thread.start()
            self._wake.set()

    def _run(self) -> None:
        wake = self._wake
        while True:
            wake.wait()
            wake.clear()
            try:
                close_old_connections()
                outbox_publish_pending()
            except Exception:
                logger.exception("the outbox relay failed; the beat sweep will publish the rows")
            finally:
                # Hold no database connection between runs (the test database must be droppable,
                # and an idle web process should not keep one open for this thread).
                connection.close()
                self.runs += 1


relay = OutboxRelayThread()


def _relay_after_commit() -> None:
    if settings.OUTBOX_PUBLISH_ON_COMMIT and kafka_client.is_configured():
        # robust: whatever happens to the wake-up, the caller's commit has happened and stands.
        transaction.on_commit(relay.wake, robust=True)


# --- Recording ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewEvent:
    """An event to record: its message (``payload``, JSON) and Kafka key, and the order it is about."""

    type: str
    key: str
    order_id: int
    payload: dict
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


def outbox_record(*, events: list[NewEvent]) -> list[OutboxEvent]:
    """Record ``events`` in the caller's transaction, one insert whatever their number; the relay
    publishes them after the commit. Each carries the id of the request (or task) recording it."""
    request_id = request_id_get() or ""  # the request's, the Celery task's, or none
    rows = OutboxEvent.objects.bulk_create(
        OutboxEvent(
            event_id=event.event_id,
            type=event.type,
            order_id=event.order_id,
            key=event.key,
            payload=event.payload,
            request_id=request_id,
        )
        for event in events
    )
    if rows:
        _relay_after_commit()
    return rows


# --- Publishing --------------------------------------------------------------------------------------


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
        OutboxEvent.objects.filter(pk=row.pk).update(attempts=F("attempts") + 1, last_error=error_text(error))
    if failed:
        logger.warning("outbox: %d of %d events not acknowledged: %s", len(failed), len(rows), failed[0][1])
    return len(acknowledged), not failed


def outbox_event_requeue(*, event_id: uuid.UUID) -> OutboxEvent:
    """Publish the event ``event_id`` again (the same event, hence the same email content); the caller
    holds a transaction."""
    event = OutboxEvent.objects.select_for_update().filter(event_id=event_id).first()
    if event is None:
        raise EventNotFound(event_id=str(event_id))
    event.published_at = None
    event.last_error = ""
    event.save(update_fields=["published_at", "last_error"])
    _relay_after_commit()
    return event


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
