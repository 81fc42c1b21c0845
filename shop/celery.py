import os

from celery import Celery, bootsteps

from shop.heartbeat import Heartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings.local")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

HEARTBEAT_SECONDS = 5.0


class WorkerHeartbeat(bootsteps.StartStopStep):
    """The worker's liveness file (shop/heartbeat.py), touched from the worker's own timer: it goes
    stale when the worker's main loop stops turning, not only when the process is gone."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.heartbeat: Heartbeat | None = None
        self.timer_entry = None

    def start(self, worker):
        from django.conf import settings

        self.heartbeat = Heartbeat("worker", directory=settings.HEARTBEAT_DIR, interval=0)
        self.heartbeat.beat()
        self.timer_entry = worker.timer.call_repeatedly(HEARTBEAT_SECONDS, self.heartbeat.beat, priority=10)

    def stop(self, worker):
        if self.timer_entry is not None:
            self.timer_entry.cancel()
        if self.heartbeat is not None:
            self.heartbeat.stop()


app.steps["worker"].add(WorkerHeartbeat)
