"""The email row's baseline: a bare kafka-python consumer loop sending each message with smtplib over one
kept connection. ``python -m bench.email_loop`` < job.json; prints ``{"started_at": wall time of the
first poll, "sent": n}``.

No Django: it reads the outcome events as the shop publishes them and sends a plain text email per
event (with the event's ``X-Shop-Event-Id``), committing offsets after each polled batch, as a
minimal at-least-once consumer would. The job: ``{"bootstrap_servers", "topic", "group",
"smtp_host", "smtp_port", "from", "count"}``.
"""

from __future__ import annotations

import json
import smtplib
import sys
import time
from email.message import EmailMessage

from kafka import KafkaConsumer, TopicPartition


def message_for(event: dict, sender: str) -> EmailMessage:
    order, reason = event["order"], event.get("reason") or {}
    message = EmailMessage()
    message["From"] = sender
    message["To"] = event["user"]["email"]
    message["Subject"] = f"Order #{order['id']}: {event['type']}"
    message["X-Shop-Event-Id"] = event["event_id"]
    message["X-Shop-Order-Id"] = str(order["id"])
    lines = "\n".join(f"{line['quantity']} x {line['name']}: {line['total']}" for line in order["lines"])
    message.set_content(
        f"{lines}\nTotal: {order['total']} {order['currency']}\n{reason.get('message', '')}\n"
    )
    return message


def run(job: dict) -> dict:
    consumer = KafkaConsumer(
        bootstrap_servers=job["bootstrap_servers"],
        group_id=job["group"],
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    deadline = time.monotonic() + 30
    while not (partitions := consumer.partitions_for_topic(job["topic"])):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no partitions for {job['topic']}")
        time.sleep(0.1)
    consumer.assign([TopicPartition(job["topic"], partition) for partition in sorted(partitions)])
    smtp = smtplib.SMTP(job["smtp_host"], job["smtp_port"], timeout=30)
    sent = 0
    started_at = time.time()
    try:
        while sent < job["count"]:
            batches = consumer.poll(timeout_ms=200, max_records=500)
            for records in batches.values():
                for record in records:
                    smtp.send_message(message_for(json.loads(record.value), job["from"]))
                    sent += 1
            if batches:
                consumer.commit()
    finally:
        smtp.quit()
        consumer.close(autocommit=False)
    return {"started_at": started_at, "sent": sent}


if __name__ == "__main__":
    json.dump(run(json.load(sys.stdin)), sys.stdout)
