"""The outbox's Prometheus series, added to the web role's ``/metrics`` (core/metrics.py) at each scrape.

The backlog and the age of its oldest unpublished event are read from the database (one query on the
partial index of unpublished rows), so they are right whichever process wrote or published the rows.
The email consumer's own series are in ``notifications/consumer_metrics.py``.
"""

from __future__ import annotations

import logging

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from notifications.models import OutboxEvent

logger = logging.getLogger(__name__)


class OutboxCollector:
    """``shop_outbox_backlog`` and ``shop_outbox_oldest_unpublished_age_seconds``, from the database.
    When the database cannot be read, the scrape goes on without them (and the log says why)."""

    def collect(self):
        try:
            backlog = OutboxEvent.objects.filter(published_at__isnull=True).aggregate(
                count=Count("id"), oldest=Min("created_at")
            )
        except Exception as error:  # a scrape must not fail because the database is away
            logger.warning(
                "metrics: the outbox backlog could not be read: %s: %s", type(error).__name__, error
            )
            return
        yield GaugeMetricFamily(
            "shop_outbox_backlog", "Outbox events not yet published to Kafka.", value=backlog["count"]
        )
        oldest = backlog["oldest"]
        age = (timezone.now() - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "shop_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest outbox event not yet published (0 when there is none).",
            value=max(age, 0.0),
        )
