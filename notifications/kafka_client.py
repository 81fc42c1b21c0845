"""The one place that talks to Kafka (kafka-python): the producer, the consumer, the topics.

Messages are bytes in and out: the JSON shape belongs to ``notifications.events``. Every timeout
comes from settings, so that an unreachable broker costs a bounded wait, never a hang.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from django.conf import settings
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import MemberState, OffsetAndMetadata

logger = logging.getLogger(__name__)

__all__ = [
    "KafkaError",
    "MemberState",
    "OffsetAndMetadata",
    "TopicPartition",
    "consumer_create",
    "consumer_is_stable",
    "email_topic_partitions",
    "ensure_topics",
    "is_configured",
    "producer_discard",
    "producer_get",
    "publish",
    "record_header",
    "topic_read_all",
    "topics_ensure",
]

_producer_lock = threading.Lock()
_producer: KafkaProducer | None = None
_producer_owner: tuple[int, str] | None = None  # (pid, bootstrap servers) the producer was made for


def is_configured() -> bool:
    return bool(settings.KAFKA_BOOTSTRAP_SERVERS)


def _bootstrap_servers() -> list[str]:
    return [server.strip() for server in settings.KAFKA_BOOTSTRAP_SERVERS.split(",") if server.strip()]


def _producer_create() -> KafkaProducer:
    timeout_ms = settings.KAFKA_PRODUCER_TIMEOUT_MS
    return KafkaProducer(
        bootstrap_servers=_bootstrap_servers(),
        client_id="shop-outbox",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        # An unreachable broker fails these calls after timeout_ms instead of kafka-python's
        # 30 s to 120 s defaults; the outbox keeps the rows and the next run tries again.
        bootstrap_timeout_ms=timeout_ms,
        max_block_ms=timeout_ms,
        request_timeout_ms=timeout_ms,
        delivery_timeout_ms=2 * timeout_ms,
    )


def producer_get() -> KafkaProducer:
    """The producer of this process (thread-safe; made again after a fork or a settings change).

    Raises ``KafkaError`` (e.g. ``NoBrokersAvailable``) when the broker cannot be reached.
    """
    global _producer, _producer_owner
    owner = (os.getpid(), settings.KAFKA_BOOTSTRAP_SERVERS)
    with _producer_lock:
        if _producer is not None and _producer_owner != owner:
            stale, _producer = _producer, None
            if _producer_owner[0] == owner[0]:  # a forked child must not touch its parent's sockets
                _close_quietly(stale)
        if _producer is None:
            _producer = _producer_create()
            _producer_owner = owner
        return _producer


def producer_discard() -> None:
    """Drop the producer after an error: the next call starts afresh (new connections, new producer id,
    which matters when the broker lost its state, as the bundled in-memory one does on restart)."""
    global _producer
    with _producer_lock:
        stale, _producer = _producer, None
    if stale is not None:
        _close_quietly(stale)


def _close_quietly(producer: KafkaProducer) -> None:
    try:
        producer.close(timeout=1)
    except Exception:  # closing a broken producer may fail in many ways
        logger.debug("closing a Kafka producer failed", exc_info=True)


def _flush_timeout() -> float:
    return 2 * settings.KAFKA_PRODUCER_TIMEOUT_MS / 1000 + 1


def _kafka_headers(headers: dict[str, str] | None) -> list[tuple[str, bytes]] | None:
    return [(name, value.encode()) for name, value in headers.items() if value] if headers else None


def record_header(record, name: str) -> str | None:
    """The value of a consumed record's header ``name`` as text (None when it has none)."""
    for key, value in record.headers or ():
        if key == name and value is not None:
            return value.decode("utf-8", errors="replace")
    return None


def publish(*, topic: str, messages: list[tuple]) -> list[Exception | None]:
    """Send ``(key, value)`` or ``(key, value, headers)`` messages and wait until the broker
    acknowledged them; ``headers`` maps names to text (empty values are left out).

    Returns one entry per message: ``None`` when acknowledged, else the error. The sending stops at
    the first message that cannot even be handed to the producer (the broker is likely gone); the
    ones after it are reported with that same error. On any error the producer is discarded.
    """
    producer = producer_get()
    futures, results = [], [None] * len(messages)
    failure: Exception | None = None
    for index, (key, value, *extra) in enumerate(messages):
        try:
            headers = _kafka_headers(extra[0] if extra else None)
            futures.append((index, producer.send(topic, key=key.encode(), value=value, headers=headers)))
        except KafkaError as error:
            failure = error
            for rest in range(index, len(messages)):
                results[rest] = error
            break
    try:
        producer.flush(timeout=_flush_timeout())
    except KafkaError as error:
        failure = failure or error
    for index, future in futures:
        try:
            future.get(timeout=0)
        except Exception as error:  # a record's error is reported, not raised
            results[index] = error
            failure = failure or error
    if failure is not None:
        producer_discard()
    return results


def consumer_create(
    *, group_id: str, topics: list[str], client_id: str = "shop-email-sender"
) -> KafkaConsumer:
    """A consumer in ``group_id`` that commits only by hand and starts a new group at the beginning."""
    session_timeout_ms = settings.KAFKA_SESSION_TIMEOUT_MS
    return KafkaConsumer(
        *topics,
        bootstrap_servers=_bootstrap_servers(),
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        # Must stay well below the session timeout, or the broker drops a healthy member.
        heartbeat_interval_ms=max(100, session_timeout_ms // 3),
        max_poll_interval_ms=max(settings.KAFKA_MAX_POLL_INTERVAL_MS, session_timeout_ms),
        bootstrap_timeout_ms=max(settings.KAFKA_PRODUCER_TIMEOUT_MS, 10000),
    )


def topic_read_all(*, topic: str, idle: float = 1.0, timeout: float = 30.0) -> list:
    """Every record of ``topic`` from its beginning, read without a consumer group (nothing is
    committed). Reading stops once no record came for ``idle`` seconds, or after ``timeout``.

    (Not by end offsets: the bundled broker answers ListOffsets "latest" wrongly for batches.)
    """
    consumer = KafkaConsumer(
        bootstrap_servers=_bootstrap_servers(),
        group_id=None,
        client_id="shop-dlq-reader",
        enable_auto_commit=False,
        bootstrap_timeout_ms=max(settings.KAFKA_PRODUCER_TIMEOUT_MS, 10000),
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, partition) for partition in sorted(partitions)]
        if not assigned:
            return []
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        records, deadline = [], time.monotonic() + timeout
        last_record = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last_record < idle:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
                last_record = time.monotonic()
        return sorted(records, key=lambda record: (record.timestamp, record.partition, record.offset))
    finally:
        consumer.close(autocommit=False)


def email_topic_partitions(*, timeout_ms: int) -> int:
    """How many partitions the brokers report for ``KAFKA_EMAIL_TOPIC`` (0: it does not exist), read
    from fresh metadata (the web role's readiness). Raises ``KafkaError`` when the brokers cannot be
    reached within ``timeout_ms``."""
    consumer = KafkaConsumer(
        bootstrap_servers=_bootstrap_servers(),
        client_id="shop-health",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )
    try:
        return len(consumer.partitions_for_topic(settings.KAFKA_EMAIL_TOPIC))
    finally:
        consumer.close()


def consumer_is_stable(consumer: KafkaConsumer) -> bool:
    """Whether the consumer is a settled member of its group (not joining, not rebalancing)."""
    return consumer.group_metadata().state == MemberState.STABLE


def ensure_topics(bootstrap_servers: str, topics: list[str], *, partitions: int = 3, timeout: float = 30.0):
    """Create the topics that do not exist yet; wait until the broker lists them."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    deadline = time.monotonic() + timeout
    admin = None
    while admin is None:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        existing = set(admin.list_topics())
        missing = [name for name in topics if name not in existing]
        if missing:
            try:
                admin.create_topics(
                    [NewTopic(name=name, num_partitions=partitions, replication_factor=1) for name in missing]
                )
            except TopicAlreadyExistsError:
                pass  # another process created it first
        while not set(topics) <= set(admin.list_topics()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics {topics} were not created within {timeout} s")
            time.sleep(0.2)
    finally:
        admin.close()


def topics_ensure(*, timeout: float = 30.0) -> None:
    """Create the email topic and its dead-letter topic when missing (Tansu does not create them)."""
    ensure_topics(
        settings.KAFKA_BOOTSTRAP_SERVERS,
        [settings.KAFKA_EMAIL_TOPIC, settings.KAFKA_EMAIL_DLQ_TOPIC],
        timeout=timeout,
    )
