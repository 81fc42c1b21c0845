from celery import shared_task

from notifications.outbox import outbox_publish_pending, outbox_purge, outbox_reconcile

PUBLISH_OUTBOX_TASK = "notifications.tasks.publish_outbox"
MAINTAIN_OUTBOX_TASK = "notifications.tasks.maintain_outbox"


@shared_task(name=PUBLISH_OUTBOX_TASK, ignore_result=True)
def publish_outbox() -> int:
    """Every 30 s (django-celery-beat): publish the outbox rows the relay thread could not."""
    return outbox_publish_pending()


@shared_task(name=MAINTAIN_OUTBOX_TASK, ignore_result=True)
def maintain_outbox() -> dict:
    """Every 5 minutes (django-celery-beat): publish again what the broker lost, delete what is old."""
    events, deliveries = outbox_purge()
    return {"republished": outbox_reconcile(), "deleted_events": events, "deleted_deliveries": deliveries}
