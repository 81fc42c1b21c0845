"""Liveness of the processes: heartbeat files (core/heartbeat.py), beat's scheduler that touches one
(shop/beat.py), and the probe the containers run (``python -m shop.probe``)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.heartbeat import Heartbeat, heartbeat_age, heartbeat_path

ROOT = Path(__file__).resolve().parents[2]


def probe(*args, env=None):
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "shop.probe", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_heartbeat_is_fresh_until_it_stops_or_goes_stale(tmp_path):
    heartbeat = Heartbeat("worker", directory=tmp_path, interval=60)
    assert heartbeat_age("worker", tmp_path) is None
    heartbeat.beat()
    assert heartbeat.path == tmp_path / "worker"
    assert heartbeat_age("worker", tmp_path) < 5

    old = time.time() - 300
    os.utime(heartbeat.path, (old, old))
    heartbeat.beat()  # within its interval: not written again
    assert heartbeat_age("worker", tmp_path) > 200
    heartbeat.interval = 0
    heartbeat.beat()
    assert heartbeat_age("worker", tmp_path) < 5

    heartbeat.stop()
    assert not heartbeat.path.exists()
    heartbeat.stop()  # twice is fine


def test_the_directory_comes_from_the_environment_unless_given(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARTBEAT_DIR", str(tmp_path / "from-env"))
    assert heartbeat_path("beat") == tmp_path / "from-env" / "beat"
    assert heartbeat_path("beat", tmp_path) == tmp_path / "beat"
    with pytest.raises(ValueError, match="unknown role"):
        heartbeat_path("web")


def test_the_heartbeat_probe_fails_when_the_file_is_missing_or_stale(tmp_path):
    env = {"HEARTBEAT_DIR": str(tmp_path)}
    missing = probe("heartbeat", "email-consumer", env=env)
    assert missing.returncode == 1 and "no heartbeat" in missing.stdout

    Heartbeat("email-consumer", directory=tmp_path).beat()
    fresh = probe("heartbeat", "email-consumer", "--max-age", "30", env=env)
    assert fresh.returncode == 0, fresh.stdout
    assert fresh.stdout.startswith("healthy: email-consumer: last heartbeat")

    old = time.time() - 120
    os.utime(tmp_path / "email-consumer", (old, old))
    stale = probe("heartbeat", "email-consumer", "--max-age", "30", env=env)
    assert stale.returncode == 1 and stale.stdout.startswith("unhealthy:")


@pytest.mark.django_db(transaction=True)
def test_the_http_probe_asks_the_web_process(live_server):
    port = live_server.url.rsplit(":", 1)[1]
    healthy = probe("http", env={"PORT": port})  # default: /health/live on 127.0.0.1:$PORT
    assert healthy.returncode == 0, healthy.stdout
    assert healthy.stdout.strip() == f"healthy: http://127.0.0.1:{port}/health/live: 200"
    missing = probe("http", f"{live_server.url}/no-such-page/")
    assert missing.returncode == 1 and missing.stdout.strip().endswith(": 404")
    down = probe("http", "/health/live", "--timeout", "2", env={"PORT": "9"})
    assert down.returncode == 1 and down.stdout.startswith("unhealthy: http://127.0.0.1:9/health/live")


@pytest.mark.django_db(transaction=True)  # the scheduler closes connections left in a transaction
def test_beat_touches_its_heartbeat_on_every_tick(settings, tmp_path):
    from shop.beat import HeartbeatScheduler
    from shop.celery import app

    settings.HEARTBEAT_DIR = str(tmp_path)
    scheduler = HeartbeatScheduler(app=app)
    assert heartbeat_age("beat", tmp_path) is None
    interval = scheduler.tick()
    assert 0 <= interval <= 5  # beat's loop turns (and beats) at least every 5 s
    assert heartbeat_age("beat", tmp_path) < 5
    scheduler.close()
    assert heartbeat_age("beat", tmp_path) is None
