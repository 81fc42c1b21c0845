"""The local runner behind `make run` (shop/localrun.py): its process plan, port check and shutdown.

A full `make run` takes too long for the suite; these tests cover the decisions it makes and the
process handling it relies on (every process stopped on SIGINT/SIGTERM, nothing left behind).
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from shop import localrun
from shop.localrun import ProcessSpec, build_plan, drop_missing_commands, taken_ports
from tests.test_compose import entry_point_problems

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/opt/venv/bin/python"


def always_free(port: int) -> bool:
    return True


def plan_for(**environ):
    return build_plan({"PATH": "/usr/bin", **environ}, python=PYTHON, port_is_free=always_free)


def wait_until(condition, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)


def test_without_kafka_settings_the_bundled_broker_runs_and_is_exported_to_every_process():
    plan = plan_for()
    assert plan.names() == ["web", "worker", "beat", "kafka", "email", "paypal", "mail"]
    assert plan.env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9092"
    kafka = plan.process("kafka")
    assert kafka.port == 9092
    assert "-m notifications.kafka_broker --port 9092" in kafka.command
    assert "--topic email-notification --topic email-notification.dlq" in kafka.command
    # The consumer starts once the broker lists the topics.
    assert plan.process("email").command.startswith(f"{PYTHON} -m shop.localrun wait-kafka")
    assert plan.process("email").command.endswith("&& exec /opt/venv/bin/python manage.py run_email_consumer")
    assert plan.env["DJANGO_SETTINGS_MODULE"] == "shop.settings.local"
    assert plan.env["PATH"] == "/opt/venv/bin:/usr/bin"


def test_with_kafka_bootstrap_servers_set_the_broker_is_not_started():
    plan = plan_for(KAFKA_BOOTSTRAP_SERVERS="kafka.internal:9092")
    assert "kafka" not in plan.names()
    assert plan.env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka.internal:9092"
    assert plan.process("email").command == f"{PYTHON} manage.py run_email_consumer"
    assert any("bundled broker is not started" in note for note in plan.notes)


def test_the_bundled_broker_moves_to_a_free_port_when_9092_is_taken():
    plan = build_plan({}, python=PYTHON, port_is_free=lambda port: port != 9092)
    port = plan.process("kafka").port
    assert port != 9092
    assert plan.env["KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{port}"
    assert f"--bootstrap-servers 127.0.0.1:{port}" in plan.process("email").command
    assert any("9092 is taken" in note for note in plan.notes)


def test_topics_follow_the_settings_variables():
    plan = plan_for(KAFKA_EMAIL_TOPIC="mails", KAFKA_EMAIL_DLQ_TOPIC="mails-dead")
    assert "--topic mails --topic mails-dead" in plan.process("kafka").command


def test_ports_follow_site_url_email_url_and_the_simulator_port():
    plan = plan_for(
        SITE_URL="http://127.0.0.1:8080", EMAIL_URL="smtp://localhost:2525", PAYPAL_SIMULATOR_PORT="8101"
    )
    assert plan.process("web").port == 8080
    assert "runserver 127.0.0.1:8080 --noreload" in plan.process("web").command
    assert plan.process("mail").port == 2525
    assert "-m shop.mailsink --host 127.0.0.1 --port 2525 --dir var/mail" in plan.process("mail").command
    assert plan.process("paypal").port == 8101
    assert plan.urls["shop"] == "http://127.0.0.1:8080/"
    assert plan.urls["paypal"] == "http://127.0.0.1:8101/"


def test_no_simulator_outside_simulator_mode_and_no_sink_for_a_remote_smtp_server():
    plan = plan_for(PAYPAL_MODE="sandbox", EMAIL_URL="smtp+tls://user:pw@smtp.example.com:587")
    assert "paypal" not in plan.names()
    assert "mail" not in plan.names()
    assert len(plan.notes) == 2


def test_the_port_check_names_the_taken_port_and_its_process():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        free = localrun.free_port()
        processes = [
            ProcessSpec("web", "x", port=taken, port_variable="SITE_URL"),
            ProcessSpec("mail", "y", port=free),
            ProcessSpec("beat", "z"),
        ]
        assert taken_ports(processes) == [
            f"port {taken} on 127.0.0.1 is already in use, and 'web' needs it (another port: set SITE_URL)"
        ]


def test_processes_whose_command_is_missing_are_left_out_with_a_warning():
    processes = [
        ProcessSpec("web", "a"),
        ProcessSpec("email", "b", management_command="run_email_consumer"),
        ProcessSpec("paypal", "c", management_command="run_paypal_simulator"),
    ]
    kept, warnings = drop_missing_commands(processes, {"runserver", "run_paypal_simulator"})
    assert [p.name for p in kept] == ["web", "paypal"]
    assert warnings == [
        "'email' is not started: this checkout has no 'manage.py run_email_consumer' command."
    ]


def test_every_process_of_the_plan_is_a_real_entry_point():
    plan = build_plan({}, python=sys.executable, port_is_free=always_free)
    problems = []
    for process in plan.processes:
        for part in process.command.split("&&"):
            words = shlex.split(part)
            words = words[1:] if words[:1] == ["exec"] else words
            problems += [f"{process.name}: {problem}" for problem in entry_point_problems(words)]
    assert problems == []


def test_the_banner_gives_the_urls_and_demo_logins():
    text = localrun.banner(plan_for())
    assert "http://127.0.0.1:8000/" in text
    assert "shopper / shopper-pass-123" in text
    assert "staff / staff-pass-123" in text and "http://127.0.0.1:8000/admin/" in text
    assert f"{localrun.MAIL_DIR}/" in text
    assert "http://127.0.0.1:8001/" in text


def test_wait_for_kafka_returns_once_the_topics_exist(kafka_broker):
    localrun.wait_for_kafka(kafka_broker.bootstrap_servers, ["email-notification"], timeout=20)
    with pytest.raises(TimeoutError):
        localrun.wait_for_kafka(kafka_broker.bootstrap_servers, ["no-such-topic-here"], timeout=1)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie waiting for a reaper is already stopped


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_the_runner_stops_every_process_and_their_children(tmp_path, stop_signal):
    """Two processes (one with a child of its own) under the real honcho manager, then SIGINT/SIGTERM."""
    sleeper = shlex.join(
        [
            sys.executable,
            "-c",
            "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)",
        ]
    )
    processes = [
        ("one", f"{sleeper} {tmp_path}/one.pid"),
        ("two", f"{sleeper} {tmp_path}/child.pid & {sleeper} {tmp_path}/two.pid"),
    ]
    script = textwrap.dedent(
        f"""
        import sys
        from shop.localrun import ProcessSpec, run_processes
        processes = [ProcessSpec(name, command) for name, command in {processes!r}]
        sys.exit(run_processes(processes, {{"PATH": "/usr/bin:/bin"}}))
        """
    )
    with open(tmp_path / "runner.log", "wb") as log:
        runner = subprocess.Popen(
            [sys.executable, "-c", script], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        pid_files = [tmp_path / f"{name}.pid" for name in ("one", "two", "child")]
        wait_until(
            lambda: all(f.exists() and f.read_text() for f in pid_files), 20, "processes did not start"
        )
        pids = [int(f.read_text()) for f in pid_files]
        assert all(_alive(pid) for pid in pids)

        runner.send_signal(stop_signal)
        assert runner.wait(timeout=20) in (130, 143)
        wait_until(lambda: not any(_alive(pid) for pid in pids), 10, f"left running: {pids}")
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    log = (tmp_path / "runner.log").read_text()
    assert "one started" in log and "two started" in log


def test_the_runner_refuses_to_start_when_a_port_is_taken(monkeypatch, capsys):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        monkeypatch.setattr(localrun, "prepare", lambda env: pytest.fail("must not prepare"))
        code = localrun.run(
            {**os.environ, "SITE_URL": f"http://127.0.0.1:{port}", "KAFKA_BOOTSTRAP_SERVERS": "x:1"}
        )
    assert code == 1
    err = capsys.readouterr().err
    assert (
        f"port {port} on 127.0.0.1 is already in use, and 'web' needs it (another port: set SITE_URL)" in err
    )
