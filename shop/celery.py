import os

from celery import Celery, bootsteps, signals

from core import logs
from core.heartbeat import Heartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings.local")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# A task runs under the request id of the request (or task) that queued it, else its own task id, so
# that its log lines and the outbox events it records can be found by that id (core/logs.py).
REQUEST_ID_TASK_HEADER = "request_id"


@signals.before_task_publish.connect
def _send_request_id(headers=None, **kwargs):
    request_id = logs.request_id_get()
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_TASK_HEADER, request_id)


@signals.task_prerun.connect
def _bind_request_id(task=None, task_id=None, **kwargs):
    passed = task.request.get(REQUEST_ID_TASK_HEADER) if task is not None else None
    task.request.request_id_token = logs.request_id_set(
        passed if logs.request_id_is_valid(passed) else task_id
    )


@signals.task_postrun.connect
def _unbind_request_id(task=None, **kwargs):
    token = getattr(task.request, "request_id_token", None) if task is not None else None
    if token is not None:
        task.request.request_id_token = None
        logs.request_id_reset(token)


@signals.setup_logging.connect
def _use_django_logging(**kwargs):
    """Celery's worker and beat log through Django's LOGGING (LOG_FORMAT, the request id) instead of
    configuring logging their own way (a receiver of this signal stops Celery from doing so)."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


HEARTBEAT_SECONDS = 5.0


class WorkerHeartbeat(bootsteps.StartStopStep):
    """The worker's liveness file (core/heartbeat.py), touched from the worker's own timer: it goes
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
