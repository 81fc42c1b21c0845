"""Liveness files for the processes that serve no HTTP: the celery worker, celery beat, the email consumer.

While its main loop runs, each process touches ``<HEARTBEAT_DIR>/<role>`` (``worker``, ``beat``,
``email-consumer``) every few seconds, and removes it when it stops. A container or Kubernetes
probe runs ``python -m shop.probe heartbeat <role> --max-age 60`` (shop/probe.py), which fails when
the file is missing or older: the loop is stuck or the process is gone.

One file per role and directory: two processes of one role on one host share it unless each gets its
own ``HEARTBEAT_DIR`` (every container has its own /tmp). Nothing here imports Django: the probe
must start fast, and the writers pass the ``HEARTBEAT_DIR`` setting in.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from pathlib import Path

logger = logging.getLogger(__name__)

ENV_VARIABLE = "HEARTBEAT_DIR"
DEFAULT_DIR = str(Path(tempfile.gettempdir()) / "shop-heartbeat")
ROLES = ("worker", "beat", "email-consumer")


def heartbeat_path(role: str, directory: str | os.PathLike | None = None) -> Path:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    return Path(directory or os.environ.get(ENV_VARIABLE) or DEFAULT_DIR) / role


def heartbeat_age(role: str, directory: str | os.PathLike | None = None) -> float | None:
    """Seconds since the role's last heartbeat, or None when there is none."""
    try:
        return max(0.0, time.time() - heartbeat_path(role, directory).stat().st_mtime)
    except FileNotFoundError:
        return None


class Heartbeat:
    """Touches the role's file, at most once every ``interval`` seconds however often ``beat()`` runs."""

    def __init__(self, role: str, *, directory: str | os.PathLike | None = None, interval: float = 2.0):
        self.path = heartbeat_path(role, directory)
        self.interval = interval
        self._last = -math.inf
        self._warned = False

    def beat(self) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
        except OSError as error:
            if not self._warned:  # a probe will say so; the process itself carries on
                logger.warning("cannot write the heartbeat file %s: %s", self.path, error)
                self._warned = True

    def stop(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
