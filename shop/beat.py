"""celery beat's scheduler for the shop: django-celery-beat's schedule in the database, plus a liveness
file (core/heartbeat.py) touched on every tick of beat's loop (at least every 5 s).

    celery -A shop beat --scheduler shop.beat:HeartbeatScheduler
"""

from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

from core.heartbeat import Heartbeat


class HeartbeatScheduler(DatabaseScheduler):
    def __init__(self, *args, **kwargs):
        self.heartbeat = Heartbeat("beat", directory=settings.HEARTBEAT_DIR)
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        self.heartbeat.beat()
        return interval

    def close(self):
        super().close()
        self.heartbeat.stop()
