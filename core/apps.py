from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares and that imports none of them: the error root, the API plumbing, admin
    helpers, logs, metrics and heartbeats."""

    name = "core"
