"""Register the outbox maintenance (reconciliation and retention) in django-celery-beat's schedule."""

from django.db import migrations

TASK = "notifications.tasks.maintain_outbox"
NAME = "notifications: reconcile and purge outbox"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_5_minutes, _ = IntervalSchedule.objects.get_or_create(every=300, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": TASK,
            "interval": every_5_minutes,
            "enabled": True,
            "description": "Publish again events with no delivery record after EMAIL_RECONCILE_AFTER_SECONDS; "
            "delete published events and finished deliveries older than OUTBOX_RETENTION_DAYS.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0004_outbox_published_at_index"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
