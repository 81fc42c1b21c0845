"""Register the outbox sweep in django-celery-beat's schedule, so that it exists after `migrate` and
staff can see and pause it in admin. It is the safety net of the relay thread: whatever the thread
could not publish (broker down, process killed) is published within about 30 s."""

from django.db import migrations

TASK = "notifications.tasks.publish_outbox"
NAME = "notifications: publish outbox"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_30_seconds, _ = IntervalSchedule.objects.get_or_create(every=30, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": TASK,
            "interval": every_30_seconds,
            "enabled": True,
            "description": "Publish the outcome events still waiting in the outbox to Kafka.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
