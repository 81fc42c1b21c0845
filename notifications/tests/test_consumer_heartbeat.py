"""The email consumer's liveness file (core/heartbeat.py): fresh while its loop turns, gone once it stops."""

import os
import time

import pytest

from core.heartbeat import Heartbeat, heartbeat_age
from notifications.tests.helpers import ConsumerThread, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_consumer_beats_while_it_runs_and_removes_its_heartbeat_when_it_stops(email_pipeline, tmp_path):
    heartbeat = Heartbeat("email-consumer", directory=tmp_path, interval=0.2)
    consumer = ConsumerThread(heartbeat=heartbeat).start()
    try:
        wait_until(lambda: heartbeat_age("email-consumer", tmp_path) is not None, message="a first heartbeat")
        old = time.time() - 600
        os.utime(heartbeat.path, (old, old))
        wait_until(lambda: heartbeat_age("email-consumer", tmp_path) < 5, message="the heartbeat renewed")
    finally:
        consumer.stop()
    assert heartbeat_age("email-consumer", tmp_path) is None
