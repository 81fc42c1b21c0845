"""Wake the outbox relay after a commit, without making the committing request wait for Kafka.

One daemon thread per process publishes the outbox whenever it is woken; the wake-up itself is a
``threading.Event.set()``, so the checkout never blocks on, nor fails because of, the broker. When
the thread cannot publish (broker down, process killed), the rows stay in the outbox and the beat
task ``notifications: publish outbox`` publishes them later: the thread is only the fast path.
"""

from __future__ import annotations

import logging
import os
import threading

from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)


class OutboxRelayThread:
    def __init__(self):
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self.runs = 0  # completed publish runs, for tests and debugging

    def wake(self) -> None:
        """Ask for a publish run soon; starts the thread on first use (and again in a forked child)."""
        with self._lock:
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._pid = os.getpid()
                self._wake = threading.Event()
                self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
                self._thread.start()
            self._wake.set()

    def _run(self) -> None:
        from notifications.services import outbox_publish_pending

        wake = self._wake
        while True:
            wake.wait()
            wake.clear()
            try:
                close_old_connections()
                outbox_publish_pending()
            except Exception:
                logger.exception("the outbox relay failed; the beat sweep will publish the rows")
            finally:
                # Hold no database connection between runs (the test database must be droppable,
                # and an idle web process should not keep one open for this thread).
                connection.close()
                self.runs += 1


relay = OutboxRelayThread()
