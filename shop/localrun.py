"""The local runner behind ``make run``: prepare a fresh clone, then run every process of the shop.

    python -m shop.localrun

1. create ``var/`` (SQLite database, Celery's filesystem queue, the mail sink's messages);
2. ``migrate``, ``seed_demo`` (idempotent), and ``collectstatic`` when DEBUG is off (with DEBUG on,
   WhiteNoise serves the files straight from the apps);
3. check that the ports the processes listen on are free, and name the one that is not;
4. run the processes with honcho's manager, each line prefixed with the process name:
   web (runserver), worker and beat (Celery), kafka (the bundled broker, only when
   KAFKA_BOOTSTRAP_SERVERS is unset), email (``run_email_consumer``), paypal
   (``run_paypal_simulator``, only in simulator mode) and mail (the SMTP sink, only when EMAIL_URL
   points at this machine).

Ctrl-C or SIGTERM stops everything: honcho starts each process in its own process group, sends
SIGTERM to every group, and SIGKILL to whatever is still there 5 s later. When one process exits on
its own, the others are stopped too, so a half-running shop is never left behind.

The production counterpart is ``Procfile`` / ``docker-compose.yml``; this module is only for one machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from shop.demo import DEMO_SHOPPER, DEMO_STAFF

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
MAIL_DIR = VAR_DIR / "mail"
DEFAULT_KAFKA_PORT = 9092
LOOPBACK_HOSTS = {"127.0.0.1", "localhost"}
WEB_READY_TIMEOUT = 120.0


@dataclass(frozen=True)
class ProcessSpec:
    """One line of the process list, as it would be written in a Procfile."""

    name: str
    command: str
    # The 127.0.0.1 port the process listens on; checked before anything starts.
    port: int | None = None
    # The variable that moves that port elsewhere, named when the port is taken.
    port_variable: str | None = None
    # A management command the process needs; a checkout that lacks it runs without this process.
    management_command: str | None = None


@dataclass
class Plan:
    processes: list[ProcessSpec]
    env: dict[str, str]
    urls: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def names(self) -> list[str]:
        return [process.name for process in self.processes]

    def process(self, name: str) -> ProcessSpec:
        return next(process for process in self.processes if process.name == name)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on the port or holds it (the bind fails)."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def build_plan(
    environ: Mapping[str, str],
    *,
    python: str = sys.executable,
    port_is_free: Callable[[int], bool] | None = None,
) -> Plan:
    """The processes to run and the environment they share, decided from ``environ`` alone.

    The only outside fact consulted is whether port 9092 is free (``port_is_free``), for the
    bundled Kafka broker, which moves to another free port rather than fail.
    """
    if port_is_free is None:
        port_is_free = lambda port: not port_in_use(port)  # noqa: E731

    env = dict(environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings.local")
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the runner's output as they are written
    bin_dir = str(Path(python).parent)
    env["PATH"] = os.pathsep.join(filter(None, [bin_dir, env.get("PATH")]))
    py = shlex.quote(python)
    manage = f"{py} manage.py"
    plan = Plan(processes=[], env=env)
    add = plan.processes.append

    site = urlsplit(env.get("SITE_URL") or "http://127.0.0.1:8000")
    web_port = site.port or 8000
    add(
        ProcessSpec(
            "web",
            f"{manage} runserver 127.0.0.1:{web_port} --noreload",
            port=web_port,
            port_variable="SITE_URL",
        )
    )
    plan.urls["shop"] = f"http://127.0.0.1:{web_port}/"
    plan.urls["admin"] = f"http://127.0.0.1:{web_port}/admin/"

    add(
        ProcessSpec("worker", f"{py} -m celery -A shop worker --pool=threads --concurrency=4 --loglevel=INFO")
    )
    add(
        ProcessSpec(
            "beat",
            f"{py} -m celery -A shop beat --loglevel=INFO"
            " --scheduler django_celery_beat.schedulers:DatabaseScheduler",
        )
    )

    topic = env.get("KAFKA_EMAIL_TOPIC") or "email-notification"
    dlq_topic = env.get("KAFKA_EMAIL_DLQ_TOPIC") or f"{topic}.dlq"
    topic_args = f"--topic {shlex.quote(topic)} --topic {shlex.quote(dlq_topic)}"
    consumer = f"{manage} run_email_consumer"
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        plan.urls["kafka"] = env["KAFKA_BOOTSTRAP_SERVERS"]
        plan.notes.append(
            f"KAFKA_BOOTSTRAP_SERVERS={env['KAFKA_BOOTSTRAP_SERVERS']} is set: using that Kafka, "
            "the bundled broker is not started."
        )
    else:
        kafka_port = DEFAULT_KAFKA_PORT if port_is_free(DEFAULT_KAFKA_PORT) else free_port()
        if kafka_port != DEFAULT_KAFKA_PORT:
            plan.notes.append(
                f"Port {DEFAULT_KAFKA_PORT} is taken: the bundled Kafka broker uses {kafka_port} instead."
            )
        bootstrap = f"127.0.0.1:{kafka_port}"
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        plan.urls["kafka"] = f"{bootstrap} (bundled broker, in memory; topics {topic}, {dlq_topic})"
        add(
            ProcessSpec(
                "kafka",
                f"{py} -m notifications.kafka_broker --port {kafka_port} {topic_args}",
                port=kafka_port,
            )
        )
        # Start consuming only once the broker answers and lists the topics.
        wait = f"{py} -m shop.localrun wait-kafka --bootstrap-servers {bootstrap} {topic_args}"
        consumer = f"{wait} && exec {consumer}"
    add(ProcessSpec("email", consumer, management_command="run_email_consumer"))

    mode = env.get("PAYPAL_MODE") or "simulator"
    if mode == "simulator":
        simulator_port = int(env.get("PAYPAL_SIMULATOR_PORT") or 8001)
        add(
            ProcessSpec(
                "paypal",
                f"{manage} run_paypal_simulator",
                port=simulator_port,
                port_variable="PAYPAL_SIMULATOR_PORT",
                management_command="run_paypal_simulator",
            )
        )
        plan.urls["paypal"] = f"http://127.0.0.1:{simulator_port}/"
    else:
        plan.notes.append(f"PAYPAL_MODE={mode}: payments go to PayPal, the simulator is not started.")

    email_url = urlsplit(env.get("EMAIL_URL") or "smtp://127.0.0.1:1025")
    if email_url.scheme == "smtp" and email_url.hostname in LOOPBACK_HOSTS:
        mail_port = email_url.port or 25
        mail_dir = os.path.relpath(MAIL_DIR, BASE_DIR)
        add(
            ProcessSpec(
                "mail",
                f"{py} -m shop.mailsink --host 127.0.0.1 --port {mail_port} --dir {shlex.quote(mail_dir)}",
                port=mail_port,
                port_variable="EMAIL_URL",
            )
        )
        plan.urls["mail"] = f"{plan.urls['shop'].rstrip('/')}/dev/mail/ (saved in {MAIL_DIR}/)"
    else:
        plan.notes.append(
            f"EMAIL_URL={env.get('EMAIL_URL')}: mail goes there, the local mail sink is not started."
        )
    return plan


def taken_ports(processes: Iterable[ProcessSpec], in_use: Callable[[int], bool] = port_in_use) -> list[str]:
    """One message per process whose port is already taken on 127.0.0.1."""
    messages = []
    for process in processes:
        if process.port is not None and in_use(process.port):
            message = f"port {process.port} on 127.0.0.1 is already in use, and '{process.name}' needs it"
            if process.port_variable:
                message += f" (another port: set {process.port_variable})"
            messages.append(message)
    return messages


def drop_missing_commands(
    processes: Iterable[ProcessSpec], available_commands: set[str]
) -> tuple[list[ProcessSpec], list[str]]:
    """Leave out the processes whose management command this checkout does not have (yet)."""
    kept, warnings = [], []
    for process in processes:
        if process.management_command and process.management_command not in available_commands:
            warnings.append(
                f"'{process.name}' is not started: this checkout has no "
                f"'manage.py {process.management_command}' command."
            )
        else:
            kept.append(process)
    return kept, warnings


def prepare(env: Mapping[str, str]) -> set[str]:
    """Create var/, migrate, seed, collect static files when needed; return the management commands."""
    VAR_DIR.mkdir(exist_ok=True)
    MAIL_DIR.mkdir(exist_ok=True)
    if (env.get("CELERY_BROKER_URL") or "filesystem://").startswith("filesystem"):
        # kombu's filesystem transport fails on missing folders instead of creating them.
        for folder in ("queue", "processed", "control"):
            (VAR_DIR / "celery" / folder).mkdir(parents=True, exist_ok=True)

    os.environ["DJANGO_SETTINGS_MODULE"] = env["DJANGO_SETTINGS_MODULE"]
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command, get_commands
    from django.db import connections

    _step("migrate")
    call_command("migrate", interactive=False, verbosity=1)
    _step("seed_demo")
    call_command("seed_demo", allow_demo_users=True)  # this machine's demo: the banner shows the logins
    if not settings.DEBUG:
        _step("collectstatic (DEBUG is off)")
        call_command("collectstatic", interactive=False, verbosity=0)
    connections.close_all()  # the processes open their own connections
    return set(get_commands())


def _step(title: str) -> None:
    print(f"==> {title}", flush=True)


def banner(plan: Plan) -> str:
    lines = [
        "=" * 78,
        f"The shop is running:  {plan.urls['shop']}",
        f"  shopper login:      {DEMO_SHOPPER[0]} / {DEMO_SHOPPER[2]}",
        f"  staff login:        {DEMO_STAFF[0]} / {DEMO_STAFF[2]}  ->  {plan.urls['admin']}",
    ]
    if "mail" in plan.urls:
        lines.append(f"  emails:             {plan.urls['mail']}")
    if "paypal" in plan.urls:
        lines.append(f"  PayPal simulator:   {plan.urls['paypal']}")
    lines.append(f"  Kafka:              {plan.urls['kafka']}")
    lines += ["Ctrl-C stops every process.", "=" * 78]
    return "\n".join(lines) + "\n"


def _announce_when_web_answers(plan: Plan, stop: threading.Event) -> None:
    web_port = plan.process("web").port
    deadline = time.monotonic() + WEB_READY_TIMEOUT
    while not stop.is_set():
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", web_port), timeout=0.5):
            sys.stdout.write(banner(plan))  # one write: not interleaved with the processes' lines
            sys.stdout.flush()
            return
        if time.monotonic() > deadline:
            sys.stdout.write(
                f"The web process did not answer on port {web_port} within {WEB_READY_TIMEOUT:.0f} s.\n"
            )
            sys.stdout.flush()
            return
        stop.wait(0.5)


def run_processes(
    processes: Iterable[ProcessSpec], env: Mapping[str, str], *, on_started: Callable[[], None] | None = None
) -> int:
    """Run the processes until one exits or the runner gets SIGINT/SIGTERM; return the exit code."""
    from honcho.manager import Manager

    class _Manager(Manager):
        # honcho has no "started" hook; this runs right after it has forked the process runners,
        # so the banner thread never exists at fork time.
        def _start(self):
            super()._start()
            if on_started is not None:
                on_started()

    manager = _Manager()
    for process in processes:
        manager.add_process(process.name, process.command, env=dict(env), cwd=str(BASE_DIR))
    manager.loop()
    return manager.returncode or 0


def wait_for_kafka(bootstrap_servers: str, topics: list[str], timeout: float) -> None:
    """Block until the broker answers and lists every topic (the bundled broker creates them)."""
    from kafka.admin import KafkaAdminClient

    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=3000)
            try:
                if set(topics) <= set(admin.list_topics()):
                    return
            finally:
                admin.close()
        except Exception as error:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Kafka at {bootstrap_servers} did not answer within {timeout} s"
                ) from error
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"Kafka at {bootstrap_servers} did not list the topics {topics} within {timeout} s"
            )
        time.sleep(0.3)


def run(environ: Mapping[str, str]) -> int:
    plan = build_plan(environ)
    taken = taken_ports(plan.processes)
    if taken:
        for message in taken:
            print(f"localrun: {message}.", file=sys.stderr)
        print(
            "localrun: stop the program that holds it (`ss -ltnp` shows which) and run `make run` again.",
            file=sys.stderr,
        )
        return 1

    available = prepare(plan.env)
    processes, warnings = drop_missing_commands(plan.processes, available)
    for note in [*plan.notes, *warnings]:
        print(f"localrun: {note}", flush=True)
    _step("starting " + ", ".join(process.name for process in processes))

    stop_banner = threading.Event()

    def start_banner():
        threading.Thread(target=_announce_when_web_answers, args=(plan, stop_banner), daemon=True).start()

    try:
        returncode = run_processes(processes, plan.env, on_started=start_banner)
    finally:
        stop_banner.set()
    # 130/143: honcho's code for "stopped by SIGINT/SIGTERM", i.e. the user asked: not a failure.
    return 0 if returncode in (130, 143) else returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole shop on this machine (make run).")
    commands = parser.add_subparsers(dest="command")
    wait = commands.add_parser("wait-kafka", help="wait until a Kafka broker lists the given topics")
    wait.add_argument("--bootstrap-servers", required=True)
    wait.add_argument("--topic", action="append", default=[])
    wait.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    if args.command == "wait-kafka":
        wait_for_kafka(args.bootstrap_servers, args.topic, args.timeout)
        return 0

    os.chdir(BASE_DIR)
    import environ

    # Settings read .env the same way (without overriding the environment): plan with the same values.
    if (BASE_DIR / ".env").is_file():
        environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
    try:
        return run(os.environ)
    except KeyboardInterrupt:
        print("\nlocalrun: interrupted before the processes started.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
