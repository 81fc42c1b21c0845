from celery import shared_task

from notifications.services import outbox_publish_pending

PUBLISH_OUTBOX_TASK = "notifications.tasks.publish_outbox"


@shared_task(name=PUBLISH_OUTBOX_TASK, ignore_result=True)
def publish_outbox() -> int:
    """Every 30 s (django-celery-beat): publish the outbox rows the relay thread could not."""
    return outbox_publish_pending()
