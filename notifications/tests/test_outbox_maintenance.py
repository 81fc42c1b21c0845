"""Reconciliation (events the broker lost are published again) and retention (old rows go)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from notifications import kafka_client
from notifications.kafka_broker import BundledKafkaBroker
from notifications.kafka_client import ensure_topics
from notifications.models import DeliveryStatus, EmailDelivery, OutboxEvent
from notifications.outbox import outbox_purge, outbox_reconcile
from notifications.tasks import MAINTAIN_OUTBOX_TASK
from notifications.tests.factories import final_order
from notifications.tests.helpers import publish_all, record_outcomes
from orders.models import OrderStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def own_broker(email_pipeline):
    """A broker of this test's own, which the test may restart empty."""
    broker = BundledKafkaBroker()
    broker.start()
    email_pipeline.KAFKA_BOOTSTRAP_SERVERS = broker.bootstrap_servers
    topics = [email_pipeline.KAFKA_EMAIL_TOPIC, email_pipeline.KAFKA_EMAIL_DLQ_TOPIC]
    ensure_topics(broker.bootstrap_servers, topics)
    kafka_client.producer_discard()
    yield broker, topics
    broker.stop()
    kafka_client.producer_discard()


def consume(count: int) -> str:
    out = StringIO()
    call_command("run_email_consumer", max_messages=count, idle_timeout=15.0, stdout=out)
    return out.getvalue()


def test_events_a_restarted_broker_lost_are_published_again_and_emailed_once(own_broker, smtp_server):
    broker, topics = own_broker
    orders = [final_order(), final_order(status=OrderStatus.FAILED, reason="payment_declined"), final_order()]
    events = record_outcomes(orders)
    publish_all(events)  # acknowledged by the broker...
    broker.stop()
    broker.start()  # ...which comes back empty (in-memory storage)
    ensure_topics(broker.bootstrap_servers, topics)
    kafka_client.producer_discard()

    assert outbox_reconcile() == 0  # too early to tell a lost event from a slow consumer
    later = timezone.now() + timedelta(minutes=16)
    assert outbox_reconcile(now=later) == 3
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()  # published again

    assert "3 sent" in consume(3)
    smtp_server.wait_for(3)
    assert smtp_server.event_counts() == {str(event.event_id): 1 for event in events}
    assert outbox_reconcile(now=later + timedelta(minutes=16)) == 0  # delivered: nothing to do


def test_old_published_events_and_finished_deliveries_are_deleted_in_batches():
    now = timezone.now()
    old, recent, unpublished = record_outcomes([final_order(), final_order(), final_order()])
    OutboxEvent.objects.filter(pk__in=[old.pk, recent.pk]).update(published_at=now - timedelta(days=31))
    OutboxEvent.objects.filter(pk=recent.pk).update(published_at=now - timedelta(days=29))
    OutboxEvent.objects.filter(pk=unpublished.pk).update(created_at=now - timedelta(days=60))
    sent = EmailDelivery.objects.create(event_id=old.event_id, order=old.order, type=old.type, status="SENT")
    trying = EmailDelivery.objects.create(
        event_id=unpublished.event_id, order=unpublished.order, type=old.type
    )
    fresh = EmailDelivery.objects.create(
        event_id=recent.event_id, order=recent.order, type=old.type, status="SENT"
    )
    EmailDelivery.objects.filter(pk__in=[sent.pk, trying.pk]).update(updated_at=now - timedelta(days=40))

    assert outbox_purge(batch_size=1) == (1, 1)

    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {recent.pk, unpublished.pk}
    assert set(EmailDelivery.objects.values_list("pk", flat=True)) == {trying.pk, fresh.pk}
    assert EmailDelivery.objects.get(pk=trying.pk).status == DeliveryStatus.PENDING


@pytest.mark.django_db  # not transactional: the schedule rows come from a migration
def test_the_maintenance_task_is_scheduled_and_registered():
    from django_celery_beat.models import PeriodicTask

    from shop.celery import app

    task = PeriodicTask.objects.get(task=MAINTAIN_OUTBOX_TASK)
    assert task.enabled and (task.interval.every, task.interval.period) == (300, "seconds")
    app.loader.import_default_modules()
    assert app.tasks[MAINTAIN_OUTBOX_TASK].apply().get() == {
        "republished": 0,
        "deleted_events": 0,
        "deleted_deliveries": 0,
    }
