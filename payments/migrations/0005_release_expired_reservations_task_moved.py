"""The expiry sweep's task moved to the app whose code it runs (payments.tasks): its schedule follows."""

from django.db import migrations

OLD = "inventory.tasks.release_expired_reservations"
NEW = "payments.tasks.release_expired_reservations"


def rename(apps, schema_editor, old=OLD, new=NEW):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=old).update(task=new)


def rename_back(apps, schema_editor):
    rename(apps, schema_editor, old=NEW, new=OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0004_refunded_amount_and_reconciliation"),
        ("inventory", "0003_release_expired_reservations_schedule"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(rename, rename_back)]
