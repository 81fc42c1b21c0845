"""The dead-letter topic of the email consumer: read it, and send chosen messages back to the main
topic (``manage.py email_dlq list | replay``).

A dead letter (see ``notifications.consumer``) carries the original message as text, its key, where
it came from and why it failed. Replaying publishes the original message again, under its key, to
``KAFKA_EMAIL_TOPIC``; its email delivery, if it was given up (``FAILED``), is opened again first,
so the consumer sends it once the cause is fixed. An email that was sent meanwhile is not sent
twice: the consumer still de-duplicates by event id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from notifications import kafka_client
from notifications.events import REQUEST_ID_HEADER
from notifications.models import DeliveryStatus, EmailDelivery


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: str
    error_code: str
    error_message: str
    failed_at: str
    source: dict
    value: str | None  # the original message, as text
    event_id: str | None = None  # of the original message, when it was an outcome event
    order_id: int | None = None
    request_id: str | None = None  # the original message's header: a replay sends it again


@dataclass
class ReplayResult:
    replayed: list[DeadLetter] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)  # event ids whose given-up delivery was reopened
    not_found: list[str] = field(default_factory=list)  # event ids asked for that are not in the topic


def _dead_letter(record) -> DeadLetter:
    raw = record.value.decode("utf-8", errors="replace") if record.value is not None else ""
    key = record.key.decode("utf-8", errors="replace") if record.key is not None else ""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):  # not one of ours: show it as it is
        return DeadLetter(
            record.partition,
            record.offset,
            key,
            "unreadable",
            raw[:200],
            "",
            {},
            None,
            request_id=kafka_client.record_header(record, REQUEST_ID_HEADER),
        )
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    value = body.get("value") if isinstance(body.get("value"), str) else None
    event_id, order_id = None, None
    try:
        original = json.loads(value) if value else None
    except ValueError:
        original = None
    if isinstance(original, dict):
        event_id = str(original.get("event_id")) if original.get("event_id") else None
        order = original.get("order") if isinstance(original.get("order"), dict) else {}
        order_id = order.get("id") if isinstance(order.get("id"), int) else None
    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        key=key,
        error_code=str(error.get("code", "")),
        error_message=str(error.get("message", "")),
        failed_at=str(body.get("failed_at", "")),
        source=body.get("source") if isinstance(body.get("source"), dict) else {},
        value=value,
        event_id=event_id,
        order_id=order_id,
        request_id=kafka_client.record_header(record, REQUEST_ID_HEADER),
    )


def dlq_list(*, idle: float = 1.0, timeout: float = 30.0) -> list[DeadLetter]:
    """Every dead letter, oldest first."""
    records = kafka_client.topic_read_all(topic=settings.KAFKA_EMAIL_DLQ_TOPIC, idle=idle, timeout=timeout)
    return [_dead_letter(record) for record in records]


@transaction.atomic
def _delivery_reopen(*, event_id: str) -> bool:
    """A delivery given up on (dead-lettered) may be tried again; answers whether it was reopened."""
    return bool(
        EmailDelivery.objects.filter(event_id=event_id, status=DeliveryStatus.FAILED).update(
            status=DeliveryStatus.PENDING, attempts=0, last_error=""
        )
    )


def dlq_replay(
    *, event_ids: set[str] | None = None, letters: list[DeadLetter] | None = None, **read
) -> ReplayResult:
    """Publish dead letters back to the main topic: those of ``event_ids``, or all when it is None.

    A message dead-lettered several times is replayed once (its latest copy). Raises ``KafkaError``
    when the broker does not acknowledge; nothing is lost then, the dead letters stay where they are.
    """
    letters = dlq_list(**read) if letters is None else letters
    chosen: dict[str, DeadLetter] = {}
    for letter in letters:
        if letter.value is None:
            continue  # nothing of the original message to send back
        if event_ids is None or letter.event_id in event_ids:
            chosen[letter.event_id or f"{letter.partition}:{letter.offset}"] = letter
    result = ReplayResult(not_found=sorted((event_ids or set()) - set(chosen)))
    for letter in chosen.values():
        if letter.event_id and _delivery_reopen(event_id=letter.event_id):
            result.reopened.append(letter.event_id)
    failures = kafka_client.publish(
        topic=settings.KAFKA_EMAIL_TOPIC,
        messages=[
            (letter.key, letter.value.encode(), {REQUEST_ID_HEADER: letter.request_id or ""})
            for letter in chosen.values()
        ],
    )
    for letter, failure in zip(chosen.values(), failures, strict=True):
        if failure is not None:
            raise failure
        result.replayed.append(letter)
    return result
