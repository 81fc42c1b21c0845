"""The email consumer loop behind ``manage.py run_email_consumer``.

Messages are polled in batches (up to ``batch_size``) and handled one after the other, each in one
database transaction, their emails sent over one kept SMTP connection (``delivery.Mailer``).
At-least-once: once the batch is done, the offsets of the messages handled are committed in one
request, and only those: emailed, found already emailed (de-duplicated by event id in
``EmailDelivery``), or dead-lettered. A message that cannot be handled yet (mail server down, a
refusal with tries left, the database away) is not skipped: its partition is rewound to it (the
messages after it in the batch are left for later too) and left alone for a backoff, while the
other partitions go on, and it is tried again. The consumer keeps polling meanwhile, so it stays
in its group however long the backoff lasts. (Not with ``KafkaConsumer.pause()``: in
kafka-python 3.0.12 a partition paused with fetched records buffered is never fetched again after
``resume()``.) A stop request ends the batch after the message in hand: what was handled is
committed, the rest comes again.

Poison messages (not JSON, not an outcome event, an unknown type or order) and emails the server
refused for good (5xx, or 4xx ``EMAIL_MAX_ATTEMPTS`` times) go to ``KAFKA_EMAIL_DLQ_TOPIC`` with their
error, and the consumer moves on. A dead letter has the original key and the value

    {"error": {"code", "message"}, "failed_at",
     "source": {"topic", "partition", "offset", "key", "consumer_group"},
     "value": <the original message, as text>}

An unreachable mail server is not the message's fault: it is retried for as long as it takes.

Each message is handled under the request id of its Kafka header ``request_id`` (the request that
recorded the outcome, core/logs.py), so its log lines, the delivery's included, carry that id; a dead
letter keeps the header. The consumer's metrics (notifications/consumer_metrics.py) count each
message's outcome, time the ones that sent an email and follow the lag of each partition it holds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from core.heartbeat import Heartbeat
from core.logs import request_id_bound, request_id_is_valid
from notifications import kafka_client
from notifications.consumer_metrics import CONSUMER_LAG, EMAIL_MESSAGES, EMAIL_SEND_SECONDS
from notifications.delivery import Mailer, email_send_order_outcome
from notifications.errors import EmailNotSent, EmailUndeliverable, NotificationError, PoisonMessage
from notifications.events import REQUEST_ID_HEADER, order_outcome_parse

logger = logging.getLogger(__name__)


@dataclass
class ConsumerStats:
    handled: int = 0  # sent + duplicates + skipped + dead_lettered (committed at the end of their batch)
    sent: int = 0
    duplicates: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    retries: int = 0


# ConsumerStats field -> the outcome label of shop_email_messages_total
_OUTCOME_LABELS = {
    "sent": "sent",
    "duplicates": "duplicate",
    "skipped": "skipped",
    "dead_lettered": "dead_lettered",
}


def _offsets_text(offsets: dict) -> str:
    return ", ".join(f"{tp.topic}/{tp.partition}:{meta.offset}" for tp, meta in sorted(offsets.items()))


def _request_id(record) -> str | None:
    value = kafka_client.record_header(record, REQUEST_ID_HEADER)
    return value if request_id_is_valid(value) else None


class _TryLater(Exception):
    def __init__(self, error: BaseException, event_id: str | None):
        self.error = error
        self.event_id = event_id
        super().__init__(str(error))


class EmailConsumer:
    def __init__(
        self,
        *,
        group_id: str | None = None,
        max_messages: int | None = None,
        idle_timeout: float | None = None,
        stop_event: threading.Event | None = None,
        poll_timeout_ms: int = 200,
        batch_size: int = 100,
        batch_seconds: float | None = None,
        client_id: str = "shop-email-sender",
        heartbeat: Heartbeat | None = None,
    ):
        self.group_id = group_id or settings.KAFKA_EMAIL_CONSUMER_GROUP
        self.max_messages = max_messages
        self.idle_timeout = idle_timeout
        self.stop_event = stop_event or threading.Event()
        self.poll_timeout_ms = poll_timeout_ms
        self.batch_size = batch_size  # records per poll, at most
        # The longest a batch may take before the records left are fetched again: well within the
        # poll interval, past which the group would take the partitions away (a slow mail server).
        self.batch_seconds = (
            settings.KAFKA_MAX_POLL_INTERVAL_MS / 1000 / 4 if batch_seconds is None else batch_seconds
        )
        self.client_id = client_id
        self.heartbeat = heartbeat  # touched on every turn of the loop: the process's liveness
        self.stats = ConsumerStats()
        self.mailer = Mailer()  # one SMTP connection, kept open across emails
        self.assignment: frozenset = frozenset()  # the partitions this member holds now
        self._retry_at: dict = {}  # partition in backoff -> monotonic time to try its message again
        self._failures: dict = {}  # partition -> failed tries of its current message (for the backoff)

    def stop(self) -> None:
        """Finish the current message, commit what was handled, and leave (safe from signal handlers
        and threads)."""
        self.stop_event.set()

    def run(self) -> ConsumerStats:
        kafka_client.topics_ensure()
        consumer = kafka_client.consumer_create(
            group_id=self.group_id, topics=[settings.KAFKA_EMAIL_TOPIC], client_id=self.client_id
        )
        logger.info(
            "email consumer started: topic=%s group=%s dlq=%s",
            settings.KAFKA_EMAIL_TOPIC,
            self.group_id,
            settings.KAFKA_EMAIL_DLQ_TOPIC,
        )
        last_activity = time.monotonic()
        try:
            while not self.stop_event.is_set() and not self._enough():
                if self.heartbeat is not None:
                    self.heartbeat.beat()
                records = consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.batch_size)
                reassigned = self._track_assignment(consumer)
                self._measure_lag(consumer)
                if reassigned or not kafka_client.consumer_is_stable(consumer):
                    last_activity = time.monotonic()  # joining or rebalancing is not being idle
                if records:
                    last_activity = time.monotonic()
                    if not self._handle_batch(consumer, records):
                        # Only partitions in backoff had data: wait a little rather than fetch it in a loop.
                        self.stop_event.wait(self._until_next_retry())
                    last_activity = time.monotonic()
                idle_for = time.monotonic() - last_activity
                if self.idle_timeout is not None and not self._retry_at and idle_for >= self.idle_timeout:
                    logger.info("email consumer idle for %.1f s: stopping", idle_for)
                    break
        finally:
            self.mailer.close()
            consumer.close(autocommit=False)
            if self.heartbeat is not None:
                self.heartbeat.stop()
        logger.info("email consumer stopped: %s", self.stats)
        return self.stats

    def _enough(self) -> bool:
        return self.max_messages is not None and self.stats.handled >= self.max_messages

    def _handle_batch(self, consumer, records: dict) -> bool:
        """Handle the polled records partition by partition, in order, then commit the offsets of
        those handled; answer whether any was tried (not all in backoff).

        A partition stops at its first record that is in backoff or cannot be handled yet: it was
        rewound to that record, so the ones after it are fetched again too. Once the batch has taken
        ``batch_seconds`` (and at least one message was tried), every partition is rewound to its
        first record not handled, to be polled again. A stop request (or
        ``max_messages``) ends the batch after the message in hand; what was not handled is not
        committed, and comes again to whoever holds its partition next.
        """
        if not connection.in_atomic_block:
            close_old_connections()  # a long-running process: drop a connection the database closed
        offsets, tried = {}, False
        deadline = time.monotonic() + self.batch_seconds
        try:
            for partition, batch in records.items():
                for record in batch:
                    if self.stop_event.is_set() or self._enough():
                        return tried
                    if tried and time.monotonic() >= deadline:
                        self._rewind(consumer, partition, record)
                        break
                    if self._backing_off(consumer, partition, record):
                        break
                    tried = True
                    if self.heartbeat is not None:
                        self.heartbeat.beat()
                    self._lag_set(consumer, partition, record.offset + 1)
                    with request_id_bound(_request_id(record)):
                        if not self._handle(consumer, partition, record):
                            break
                    offsets[partition] = kafka_client.OffsetAndMetadata(record.offset + 1, "", -1)
        finally:
            self._commit(consumer, offsets)
        return tried

    def _commit(self, consumer, offsets: dict) -> None:
        if not offsets:
            return
        try:
            consumer.commit(offsets)
        except kafka_client.KafkaError as commit_error:
            # Handled but not committed (e.g. a rebalance): they come back and are found delivered.
            logger.warning("commit of offsets %s failed: %s", _offsets_text(offsets), commit_error)

    # --- partitions ------------------------------------------------------------------------------

    def _track_assignment(self, consumer) -> bool:
        assignment = frozenset(consumer.assignment())
        if assignment == self.assignment:
            return False
        logger.info("email consumer partitions: %s", sorted(tp.partition for tp in assignment))
        for revoked in self.assignment - assignment:
            try:
                CONSUMER_LAG.remove(revoked.topic, str(revoked.partition))
            except KeyError:
                pass  # never measured
        self.assignment = assignment
        for partition in list(self._retry_at):
            if partition not in assignment:  # its new owner starts again from the committed offset
                self._retry_at.pop(partition, None)
                self._failures.pop(partition, None)
        return True

    def _measure_lag(self, consumer) -> None:
        """The lag of each partition held: the high watermark of the last fetch response minus the
        position (no ListOffsets request: see notifications/consumer_metrics.py)."""
        for partition in self.assignment:
            try:
                highwater = consumer.highwater(partition)
                if highwater is None:  # nothing fetched from it yet
                    continue
                position = consumer.position(partition, timeout_ms=0)
            except kafka_client.KafkaError:
                continue  # revoked meanwhile: the next turn sees the new assignment
            if position is not None:
                lag = CONSUMER_LAG.labels(partition.topic, str(partition.partition))
                lag.set(max(highwater - position, 0))

    def _lag_set(self, consumer, partition, position: int) -> None:
        """The lag of ``partition`` as the message before ``position`` is taken in hand: the position
        of a polled batch is past its end, and the messages behind the one in hand are still to do."""
        try:
            highwater = consumer.highwater(partition)
        except kafka_client.KafkaError:
            return  # revoked meanwhile
        if highwater is not None:
            CONSUMER_LAG.labels(partition.topic, str(partition.partition)).set(max(highwater - position, 0))

    def _rewind(self, consumer, partition, record) -> None:
        """Fetch ``record`` and those after it again, at the next poll."""
        try:
            consumer.seek(partition, record.offset)
        except ValueError:
            pass  # revoked meanwhile: the new owner reads it from the committed offset

    def _backing_off(self, consumer, partition, record) -> bool:
        """True when ``partition`` waits for its backoff: its record goes back, to be fetched again."""
        due = self._retry_at.get(partition)
        if due is None:
            return False
        if time.monotonic() >= due:
            del self._retry_at[partition]
            return False
        try:
            consumer.seek(partition, record.offset)
        except ValueError:
            self._retry_at.pop(partition, None)  # revoked meanwhile
        return True

    def _until_next_retry(self, cap: float = 0.2) -> float:
        if not self._retry_at:
            return 0
        return max(0.0, min(cap, min(self._retry_at.values()) - time.monotonic()))

    def _backoff(self, partition) -> float:
        failures = self._failures.get(partition, 1)
        base, cap = settings.EMAIL_RETRY_BACKOFF_SECONDS, settings.EMAIL_RETRY_BACKOFF_MAX_SECONDS
        return min(base * 2 ** min(failures - 1, 30), cap)

    # --- one message -----------------------------------------------------------------------------

    def _handle(self, consumer, partition, record) -> bool:
        """Handle one message; True when it was (emailed, found emailed, or dead-lettered), False when
        its partition was rewound to it for a backoff."""
        started = time.monotonic()
        try:
            outcome, event_id, error = self._process(record)
        except _TryLater as retry:
            self._failures[partition] = self._failures.get(partition, 0) + 1
            delay = self._backoff(partition)
            self.stats.retries += 1
            EMAIL_MESSAGES.labels(outcome="retried").inc()
            try:
                consumer.seek(partition, record.offset)
                self._retry_at[partition] = time.monotonic() + delay
            except ValueError:
                pass  # revoked meanwhile: the new owner reads it from the committed offset
            self._log(record, "retry", retry.event_id, retry.error, started, extra=f" retry_in={delay:.1f}s")
            return False
        self._failures.pop(partition, None)
        self.stats.handled += 1
        setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        EMAIL_MESSAGES.labels(outcome=_OUTCOME_LABELS[outcome]).inc()
        if outcome == "sent":
            EMAIL_SEND_SECONDS.observe(time.monotonic() - started)
        self._log(record, outcome, event_id, error, started)
        return True

    def _process(self, record) -> tuple[str, str | None, BaseException | None]:
        """Return (outcome, event id, error); raise ``_TryLater`` when the message must wait."""
        event_id = None
        try:
            event = order_outcome_parse(record.value)
            event_id = str(event.event_id)
            result = email_send_order_outcome(event=event, mailer=self.mailer)
            outcome = {"sent": "sent", "duplicate": "duplicates", "skipped": "skipped"}[result.value]
            return outcome, event_id, None
        except (PoisonMessage, EmailUndeliverable) as error:
            dead = error
        except EmailNotSent as error:
            raise _TryLater(error, event_id) from error
        except Exception as error:
            # The database, a bug in a template...: nothing wrong with the message itself.
            logger.exception("email message %s/%d could not be handled", record.topic, record.offset)
            raise _TryLater(error, event_id) from error
        try:
            self._dead_letter(record, dead)
        except Exception as error:
            logger.warning("dead-lettering %s/%d failed: %s", record.topic, record.offset, error)
            raise _TryLater(error, event_id) from error
        return "dead_lettered", event_id or dead.data.get("event_id"), dead

    def _dead_letter(self, record, error: NotificationError) -> None:
        value = record.value.decode("utf-8", errors="replace") if record.value is not None else None
        key = record.key.decode("utf-8", errors="replace") if record.key is not None else ""
        body = {
            "error": {"code": error.code, "message": error.message},
            "source": {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "key": key,
                "consumer_group": self.group_id,
            },
            "failed_at": timezone.now().isoformat(),
            "value": value,
        }
        (failure,) = kafka_client.publish(
            topic=settings.KAFKA_EMAIL_DLQ_TOPIC,
            messages=[
                (
                    key,
                    json.dumps(body, ensure_ascii=False).encode(),
                    {REQUEST_ID_HEADER: _request_id(record) or ""},
                )
            ],
        )
        if failure is not None:
            raise failure  # not dead-lettered: the message is tried again, nothing is lost

    def _log(self, record, outcome, event_id, error, started, extra="") -> None:
        logger.info(
            "email message partition=%d offset=%d key=%s event=%s outcome=%s%s took=%.3fs%s",
            record.partition,
            record.offset,
            record.key.decode("utf-8", errors="replace") if record.key is not None else "-",
            event_id or "-",
            outcome,
            f" error={getattr(error, 'code', type(error).__name__)}: {error}" if error else "",
            time.monotonic() - started,
            extra,
        )
