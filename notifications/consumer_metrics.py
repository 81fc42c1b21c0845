"""The email consumer's Prometheus series, served on ``run_email_consumer --metrics-port N``.

Messages handled by outcome, the time to handle a message whose email was sent, and the lag per
partition. The lag is the partition's high watermark as the broker reported it in the consumer's last
fetch response, minus the consumer's position; it is not asked with ListOffsets (the bundled broker
answers "latest" wrongly for batches). So it is known only for the partitions the consumer holds and
has fetched from, and it is as fresh as the last fetch (a fetch answers at once when records wait, and
the consumer fetches on every turn of its loop otherwise).

Their own registry (not the default one of the web role), with the process's CPU and memory series.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

CONSUMER_REGISTRY = CollectorRegistry()
ProcessCollector(registry=CONSUMER_REGISTRY)

MESSAGE_OUTCOMES = ("sent", "duplicate", "skipped", "dead_lettered", "retried")

EMAIL_MESSAGES = Counter(
    "shop_email_messages",
    "Messages of the email topic handled, by outcome: sent (the email was sent), duplicate (sent "
    "before), skipped (no address), dead_lettered (poison, or refused for good), retried (to be tried "
    "again: mail server down, a temporary refusal, the database away).",
    ["outcome"],
    registry=CONSUMER_REGISTRY,
)
EMAIL_SEND_SECONDS = Histogram(
    "shop_email_send_seconds",
    "Time to handle a message whose email was sent (render, SMTP, record).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=CONSUMER_REGISTRY,
)
CONSUMER_LAG = Gauge(
    "shop_email_consumer_lag",
    "Messages of a partition this consumer holds that it has not handled yet (high watermark of the "
    "last fetch minus the consumer's position).",
    ["topic", "partition"],
    registry=CONSUMER_REGISTRY,
    multiprocess_mode="liveall",
)

for _outcome in MESSAGE_OUTCOMES:
    EMAIL_MESSAGES.labels(outcome=_outcome)
