"""Row 3: emails per second through outbox -> relay -> Kafka -> ``run_email_consumer`` -> SMTP.

ours: ``n`` failed orders (four failure reasons in turn, shoppers writing English and Vietnamese) with
their outcome events recorded in the outbox by the shop's own ``order_outcomes_record``. Once
``run_email_consumer`` (the Procfile's ``email`` line, production settings, one process) holds its
partitions, the clock starts and the relay (``outbox_publish_pending``, as the web process's relay
thread runs it) publishes the events; the clock stops when the n-th email reached the SMTP sink.
baseline: a bare kafka-python consumer loop (``bench.email_loop``, a process of its own) reading the
same n messages from a topic filled beforehand, sending each with smtplib over one kept connection to
the same sink; the clock runs from its first poll to the n-th email at the sink.

Afterwards: every event's email arrived exactly once (by ``X-Shop-Event-Id``), and the consumer
stopped gracefully on SIGTERM.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

from django.conf import settings
from django.db import transaction
from django.test import override_settings

from bench.dataset import orders_generate, products_create, users_create
from bench.measure import Goal, Result, rss_kib
from bench.processes import wait_for_log, wait_until
from notifications import kafka_client
from notifications.kafka_client import ensure_topics
from notifications.models import DeliveryStatus, EmailDelivery, OutboxEvent
from notifications.outbox import outbox_publish_pending
from notifications.selectors import outbox_unpublished
from orders.models import FailureReason, Order
from orders.outcomes import order_outcomes_record
from tests.fixtures.stack import ROOT, procfile

GOAL = Goal(">= 0.8 (ours / bare loop)", at_least=0.8)
REASONS = [
    FailureReason.PAYMENT_DECLINED,
    FailureReason.PAYMENT_CANCELLED,
    FailureReason.RESERVATION_EXPIRED,
    FailureReason.CANCELLED_BY_SHOPPER,
]
TOPIC, BASELINE_TOPIC = "bench-email", "bench-email-baseline"


def outcomes_record(count: int) -> None:
    """``count`` final orders, each with its outcome event in the outbox (not published)."""
    users = users_create(prefix="email", count=min(count, 1000))
    products = products_create(prefix="EMAIL", count=5, on_hand=1)
    order_ids = orders_generate(
        count=count, product_ids=products, user_ids=users, status="FAILED", failure_reasons=REASONS
    )
    for start in range(0, len(order_ids), 500):
        with transaction.atomic():
            order_outcomes_record(orders=list(Order.objects.filter(pk__in=order_ids[start : start + 500])))


def exactly_once(counts: Counter, expected: set[str]) -> str:
    """'' when every expected event arrived once and nothing else did; else what went wrong."""
    missing = expected - set(counts)
    twice = {event: n for event, n in counts.items() if n > 1}
    unknown = set(counts) - expected
    problems = [
        f"{len(missing)} missing" if missing else "",
        f"{len(twice)} more than once" if twice else "",
        f"{len(unknown)} not expected" if unknown else "",
    ]
    return ", ".join(problem for problem in problems if problem)


def ours_run(bench, expected: set[str]) -> float:
    stack, sink = bench.stack, bench.stack.smtp
    stack.start(
        "email", procfile()["email"], {"KAFKA_EMAIL_TOPIC": TOPIC, "KAFKA_EMAIL_DLQ_TOPIC": f"{TOPIC}.dlq"}
    )
    wait_for_log(stack, "email", r"email consumer partitions: \[0, 1, 2\]", timeout=120)
    started = time.time()
    outbox_publish_pending()
    sink.wait_for(len(expected), timeout=max(120.0, len(expected) / 5))
    seconds = time.time() - started
    wait_until(
        lambda: EmailDelivery.objects.filter(status=DeliveryStatus.SENT).count() >= len(expected),
        timeout=30,
        message="every delivery recorded as sent",
    )
    bench.memory[f"email consumer (pid {stack.processes['email'].pid})"] = rss_kib(
        stack.processes["email"].pid
    )
    codes = stack.stop("email")
    bench.check("email consumer stopped gracefully on SIGTERM", codes == {"email": 0}, str(codes))
    problem = exactly_once(sink.event_counts(), expected)
    bench.check(
        "every email arrived exactly once (X-Shop-Event-Id)",
        not problem,
        problem or f"{len(expected)} emails",
    )
    return seconds


def baseline_run(bench, count: int) -> float:
    stack, sink = bench.stack, bench.stack.smtp
    job = {
        "bootstrap_servers": stack.kafka.bootstrap_servers,
        "topic": BASELINE_TOPIC,
        "group": "bench-bare-loop",
        "smtp_host": sink.host,
        "smtp_port": sink.port,
        "from": settings.DEFAULT_FROM_EMAIL,
        "count": count,
    }
    loop = subprocess.Popen(
        [sys.executable, "-m", "bench.email_loop"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    loop.stdin.write(json.dumps(job))
    loop.stdin.close()
    sink.wait_for(count, timeout=max(120.0, count / 5))
    finished = time.time()
    output = loop.stdout.read()
    if loop.wait(60) != 0:
        raise RuntimeError(f"the bare loop exited with {loop.returncode}")
    return finished - json.loads(output)["started_at"]


def run(bench) -> Result:
    count = bench.sizes.emails
    outcomes_record(count)
    events = list(outbox_unpublished().values_list("event_id", "key", "payload"))
    expected = {str(event_id) for event_id, _key, _payload in events}
    assert len(expected) == count, f"{len(expected)} unpublished events, not {count}"
    bootstrap = bench.stack.kafka.bootstrap_servers
    ensure_topics(bootstrap, [TOPIC, f"{TOPIC}.dlq", BASELINE_TOPIC])
    with override_settings(KAFKA_EMAIL_TOPIC=TOPIC, KAFKA_EMAIL_DLQ_TOPIC=f"{TOPIC}.dlq"):
        ours_seconds = ours_run(bench, expected)
    published = OutboxEvent.objects.filter(published_at__isnull=False).count()

    # The same messages, as the relay wrote them, on the baseline's topic before its clock starts.
    messages = [
        (key, json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())
        for _, key, payload in events
    ]
    try:
        for start in range(0, len(messages), 1000):
            errors = kafka_client.publish(topic=BASELINE_TOPIC, messages=messages[start : start + 1000])
            assert errors == [None] * len(errors), errors
    finally:
        kafka_client.producer_discard()  # the broker stops at the end of the run: no producer left
    bench.stack.smtp.clear()
    baseline_seconds = baseline_run(bench, count)
    problem = exactly_once(bench.stack.smtp.event_counts(), expected)
    bench.check("the bare loop sent every email once", not problem, problem or f"{count} emails")
    bench.stack.smtp.clear()

    ours, baseline = count / ours_seconds, count / baseline_seconds
    return Result(
        row="3",
        title=f"emails/s, {count:,} outcomes: outbox -> relay -> Kafka -> run_email_consumer -> SMTP "
        "vs a bare kafka-python + smtplib loop",
        ours=ours,
        baseline=baseline,
        unit="/s",
        ratio=ours / baseline,
        goal=GOAL,
        notes=[
            f"ours {ours_seconds:.1f} s from the first publish to the last email ({published:,} events "
            f"published, 3 partitions, 1 consumer); the bare loop {baseline_seconds:.1f} s"
        ],
    )
