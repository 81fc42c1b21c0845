"""The deployment files checked against the code: docker-compose.yml, Dockerfile, Procfile, .env.example,
gunicorn.conf.py.

There is no Docker engine here, so nothing is started: the compose file is parsed with PyYAML and every
command of the shop's image must name a real entry point (a management command with options it
accepts, a Celery sub-command of an importable app, gunicorn with its configuration file and an
importable WSGI application, a module run with ``python -m``), every health check must probe what
that service's process actually provides, and every environment variable a service of the shop's
image is given must be one the settings (or gunicorn.conf.py) read. tests/test_system.py runs the
same commands for real.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_DIR = ROOT / "shop" / "settings"
SHOP_IMAGE = "shop-checkout:latest"

# env("NAME", ...), env.bool("NAME", ...), env.int(...), env.db(...), env.list(...), env.email_url(...)
ENV_READ = re.compile(r"""\benv(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]*)["']""")
OS_ENV_READ = re.compile(r"""\bos\.environ\.get\(\s*["']([A-Z][A-Z0-9_]*)["']""")
INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")
GUNICORN_CONFIG = ROOT / "gunicorn.conf.py"

# Variables the shop's image reads without going through the settings modules.
APP_ENV_ALLOWLIST = {
    "DJANGO_SETTINGS_MODULE": "manage.py, shop.celery and shop.wsgi pick the settings module from it",
}
# Third-party images: the variables their entrypoints document (apache/kafka turns every KAFKA_*
# variable into a server property).
IMAGE_ENV = {
    "postgres": ("POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD", "PGDATA"),
    "redis": (),
    "apache/kafka": ("KAFKA_", "CLUSTER_ID"),
    "axllent/mailpit": ("MP_", "TZ"),
}
# Variables used only by docker-compose.yml itself (interpolation), never by Django.
COMPOSE_ONLY_VARIABLES = {
    "POSTGRES_PASSWORD": "the postgres service's password, also written into DATABASE_URL",
    "WEB_PORT": "host port of the shop",
    "WEB_CONCURRENCY": "gunicorn worker processes",
    "MAILPIT_UI_PORT": "host port of mailpit's web UI",
    "KAFKA_EMAIL_PARTITIONS": "partitions of the topics kafka-init creates",
}
CONTRACT_VARIABLES = [
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_EMAIL_TOPIC",
    "PAYPAL_MODE",
    "PAYPAL_CLIENT_ID",
    "PAYPAL_CLIENT_SECRET",
    "PAYPAL_WEBHOOK_ID",
    "PAYPAL_API_BASE",
    "EMAIL_URL",
    "RESERVATION_TTL_SECONDS",
    "ORDER_WORKERS",
    "ORDER_QUEUE_SIZE",
    "SHOP_CURRENCY",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
]


# --- the checker ---------------------------------------------------------------------------------


def settings_variables(modules=("base", "local", "production", "test")) -> set[str]:
    """The environment variables the settings modules read."""
    names: set[str] = set()
    for module in modules:
        names |= set(ENV_READ.findall((SETTINGS_DIR / f"{module}.py").read_text()))
    return names


def gunicorn_variables() -> set[str]:
    """The environment variables gunicorn.conf.py reads itself (PORT, WEB_CONCURRENCY, GUNICORN_THREADS,
    PROMETHEUS_MULTIPROC_DIR)."""
    return set(OS_ENV_READ.findall(GUNICORN_CONFIG.read_text()))


def app_variables() -> set[str]:
    return settings_variables() | gunicorn_variables() | set(APP_ENV_ALLOWLIST)


def load_compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def is_shop_image(service: dict) -> bool:
    return "build" in service or service.get("image") == SHOP_IMAGE


def dockerfile_cmd() -> list[str]:
    cmd_lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    return json.loads(cmd_lines[-1].removeprefix("CMD "))


def service_command(service: dict) -> list[str]:
    command = service.get("command")
    if command is None:
        return dockerfile_cmd()
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def entry_point_problems(argv: list[str]) -> list[str]:
    """Why ``argv``, a command run in the shop's image, does not start a real entry point ([] if it does)."""
    if not argv:
        return ["empty command"]
    program, *args = argv
    if Path(program).name in ("sh", "bash") and args[:1] == ["-c"] and len(args) > 1:
        problems = []
        for part in re.split(r"&&|\|\||;", args[1]):
            words = shlex.split(part)
            if words[:1] == ["exec"]:
                words = words[1:]
            if words:
                problems += entry_point_problems(words)
        return problems
    if program == sys.executable or re.fullmatch(r"python(3(\.\d+)?)?", Path(program).name):
        if args[:1] == ["manage.py"]:
            return management_command_problems(args[1:])
        if args[:1] == ["-m"] and len(args) > 1:
            if args[1] == "celery":
                return celery_problems(args[2:])
            if importlib.util.find_spec(args[1]) is None:
                return [f"'python -m {args[1]}': no such module"]
            return []
        return [f"unknown python entry point: {shlex.join(argv)}"]
    if program == "celery":
        return celery_problems(args)
    if program == "gunicorn":
        return gunicorn_problems(args)
    return [f"unknown program {program!r} in: {shlex.join(argv)}"]


def management_command_problems(args: list[str]) -> list[str]:
    from django.core.management import BaseCommand, CommandError, get_commands, load_command_class

    if not args:
        return ["'manage.py' without a command"]
    name, rest = args[0], args[1:]
    commands = get_commands()
    if name not in commands:
        return [f"'manage.py {name}' is not a management command of this project"]
    app = commands[name]
    command = app if isinstance(app, BaseCommand) else load_command_class(app, name)
    try:
        command.create_parser("manage.py", name).parse_args(rest)
    except CommandError as error:
        return [f"'manage.py {shlex.join(args)}': {error}"]
    return []


def celery_problems(args: list[str]) -> list[str]:
    from celery import Celery
    from celery.app.utils import find_app
    from celery.bin.celery import celery as celery_cli
    from celery.concurrency import get_available_pool_names

    app_name, sub, rest, i = None, None, [], 0
    while i < len(args):
        word = args[i]
        if word in ("-A", "--app"):
            app_name, i = args[i + 1], i + 2
        elif word.startswith("--app="):
            app_name, i = word.split("=", 1)[1], i + 1
        else:
            sub, rest = word, args[i + 1 :]
            break
    problems = []
    if app_name is None:
        problems.append("celery without -A/--app")
    else:
        try:
            app = find_app(app_name)
        except Exception as error:
            problems.append(f"celery app {app_name!r} cannot be loaded: {error}")
        else:
            if not isinstance(app, Celery):
                problems.append(f"celery app {app_name!r} is not a Celery application")
    if sub not in celery_cli.commands:
        return [*problems, f"'celery {sub}' is not a celery sub-command"]
    known = {opt for param in celery_cli.commands[sub].params for opt in param.opts + param.secondary_opts}
    for i, word in enumerate(rest):
        if not word.startswith("-"):
            continue
        option, _, value = word.partition("=")
        if option not in known:
            problems.append(f"'celery {sub}' has no option {option}")
            continue
        value = value or (rest[i + 1] if i + 1 < len(rest) else "")
        if option in ("-P", "--pool") and value not in get_available_pool_names():
            problems.append(f"'celery {sub}': no pool named {value!r}")
        if option == "--scheduler":
            module, _, attr = value.partition(":")
            try:
                found = hasattr(importlib.import_module(module), attr)
            except ImportError:
                found = False
            if not found:
                problems.append(f"'celery {sub}': no scheduler {value!r}")
    return problems


def gunicorn_config(args: list[str]):
    """gunicorn's configuration for these arguments, as gunicorn builds it: its defaults, then the
    configuration file (relative to the image's working directory, the repository), then the
    command line. Raises ``ValueError`` for what gunicorn would refuse."""
    import runpy

    from gunicorn.config import Config

    config = Config()
    try:
        parsed = config.parser().parse_args(args)
    except SystemExit:
        raise ValueError(f"gunicorn does not accept: {shlex.join(args)}") from None
    if parsed.config:
        path = ROOT / parsed.config.removeprefix("file:")
        if not path.is_file():
            raise ValueError(f"gunicorn configuration file {parsed.config!r} does not exist")
        for name, value in runpy.run_path(str(path)).items():
            if name in config.settings:
                config.set(name, value)
    for name, value in vars(parsed).items():
        if value is not None and name != "args":
            config.set(name, value)
    if len(parsed.args) > 1 or not (parsed.args or config.wsgi_app):
        raise ValueError(f"gunicorn needs one WSGI application, got {parsed.args or config.wsgi_app}")
    config.set("wsgi_app", parsed.args[0] if parsed.args else config.wsgi_app)
    return config


def gunicorn_problems(args: list[str]) -> list[str]:
    try:
        config = gunicorn_config(args)
    except ValueError as error:
        return [str(error)]
    module, _, attribute = config.wsgi_app.partition(":")
    try:
        loaded = importlib.import_module(module)
    except ImportError as error:
        return [f"gunicorn application module {module!r} cannot be imported: {error}"]
    if not callable(getattr(loaded, attribute or "application", None)):
        return [f"{config.wsgi_app!r} is not a WSGI application"]
    return []


def heartbeat_written_by(argv: list[str]) -> str | None:
    """Which heartbeat file (core/heartbeat.py) the process started by ``argv`` keeps fresh, if any."""
    program, *args = argv
    if Path(program).name.startswith("python") and args[:2] == ["manage.py", "run_email_consumer"]:
        return "email-consumer"
    if Path(program).name.startswith("python") and args[:2] == ["-m", "celery"]:
        program, args = "celery", args[2:]
    if program != "celery":
        return None
    words = [word for word in args if not word.startswith("-")]
    if "worker" in words:
        from shop.celery import WorkerHeartbeat, app

        return "worker" if WorkerHeartbeat in app.steps["worker"] else None
    if "beat" in words:
        from django.conf import settings

        from shop.beat import HeartbeatScheduler

        scheduler = settings.CELERY_BEAT_SCHEDULER
        for index, word in enumerate(args):
            if word in ("-S", "--scheduler") and index + 1 < len(args):
                scheduler = args[index + 1]
            elif word.startswith("--scheduler="):
                scheduler = word.split("=", 1)[1]
        module, _, attribute = scheduler.partition(":")
        try:
            found = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError):
            return None
        return "beat" if isinstance(found, type) and issubclass(found, HeartbeatScheduler) else None
    return None


def healthcheck_problems(name: str, service: dict, compose: dict) -> list[str]:
    """What is wrong with the health check of one service of the shop's image."""
    healthcheck = service.get("healthcheck") or {}
    command = service_command(service)
    if healthcheck.get("disable"):
        if name == "migrate":
            return []
        return [f"{name}: a long-running service without a health check"]
    test = healthcheck.get("test")
    if not test:
        return [f"{name}: no health check (the image's own probes the web role only)"]
    if test[0] != "CMD":
        return [f"{name}: the health check must be an exec form ['CMD', ...]"]
    probe = test[1:]
    problems = [f"{name}: health check: {problem}" for problem in entry_point_problems(probe)]
    if problems:
        return problems
    if probe[:3] != ["python", "-m", "shop.probe"]:
        return [f"{name}: the health check is not python -m shop.probe"]
    kind, *rest = probe[3:]
    if kind == "heartbeat":
        written = heartbeat_written_by(command)
        if rest[:1] != [written]:
            return [f"{name}: probes the {rest[:1]} heartbeat, but its process keeps {written!r} fresh"]
        return []
    if kind == "http":
        target = rest[0] if rest else "/health/live"
        if Path(command[0]).name == "gunicorn":
            if target not in ("/health/live", "/health/ready"):
                return [f"{name}: the web role's health check must ask /health/live or /health/ready"]
            return []
        if command[1:3] == ["manage.py", "run_paypal_simulator"]:
            port = service["environment"].get("PAYPAL_SIMULATOR_PORT", "8001")
            if target != f"http://127.0.0.1:{port}/":
                return [f"{name}: the simulator listens on {port}, the health check asks {target}"]
            return []
    return [f"{name}: its process serves no {kind} probe"]


def compose_command_problems(compose: dict) -> list[str]:
    problems = []
    for name, service in compose["services"].items():
        if is_shop_image(service):
            problems += [f"{name}: {problem}" for problem in entry_point_problems(service_command(service))]
    return problems


def environment_names(service: dict) -> list[str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return [item.split("=", 1)[0] for item in environment]
    return list(environment)


def compose_healthcheck_problems(compose: dict) -> list[str]:
    problems = []
    for name, service in compose["services"].items():
        if is_shop_image(service):
            problems += healthcheck_problems(name, service, compose)
    return problems


def compose_environment_problems(compose: dict) -> list[str]:
    read = app_variables()
    problems = []
    for name, service in compose["services"].items():
        names = environment_names(service)
        if is_shop_image(service):
            problems += [f"{name}: the settings do not read {var}" for var in names if var not in read]
            continue
        image = service["image"].rsplit(":", 1)[0]
        if image not in IMAGE_ENV:
            problems.append(f"{name}: image {image} has no documented variables in IMAGE_ENV")
            continue
        allowed = IMAGE_ENV[image]
        problems += [
            f"{name}: {image} does not read {var}" for var in names if not var.startswith(allowed or ("\0",))
        ]
    return problems


# --- docker-compose.yml --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose():
    return load_compose()


def test_compose_runs_every_process_of_the_shop(compose):
    services = compose["services"]
    expected = {
        "postgres",
        "redis",
        "kafka",
        "kafka-init",
        "mailpit",
        "migrate",
        "web",
        "worker",
        "beat",
        "email-consumer",
        "paypal-simulator",
    }
    assert expected <= set(services)
    assert services["paypal-simulator"]["profiles"] == ["simulator"]
    assert all("profiles" not in services[name] for name in expected - {"paypal-simulator"})


def test_the_shop_services_share_one_image_with_production_settings(compose):
    shop_services = {name: s for name, s in compose["services"].items() if is_shop_image(s)}
    assert set(shop_services) == {"migrate", "web", "worker", "beat", "email-consumer", "paypal-simulator"}
    for name, service in shop_services.items():
        assert service["build"] == ".", name
        assert service["image"] == SHOP_IMAGE, name
        assert service["environment"]["DJANGO_SETTINGS_MODULE"] == "shop.settings.production", name


def test_every_command_of_the_shop_image_is_a_real_entry_point(compose):
    assert compose_command_problems(compose) == []


@pytest.mark.parametrize(
    ("service", "command", "expected"),
    [
        ("email-consumer", ["python", "manage.py", "run_email_consumers"], "run_email_consumers"),
        ("migrate", ["python", "manage.py", "migrate", "--no-such-option"], "--no-such-option"),
        ("worker", ["celery", "-A", "shop", "wrker"], "wrker"),
        ("worker", ["celery", "-A", "shop", "worker", "--pool=nosuchpool"], "nosuchpool"),
        ("worker", ["celery", "-A", "no_such_app", "worker"], "no_such_app"),
        ("beat", "celery -A shop beat --scheduler no.such:Scheduler", "no.such:Scheduler"),
        ("web", ["gunicorn", "shop.wsgii:application"], "shop.wsgii"),
        ("web", ["uwsgi", "--http", ":8000"], "uwsgi"),
        (
            "migrate",
            ["sh", "-c", "python manage.py migrate && python manage.py nosuchcommand"],
            "nosuchcommand",
        ),
    ],
)
def test_the_checker_reports_a_command_that_does_not_exist(compose, service, command, expected):
    mutated = copy.deepcopy(compose)
    mutated["services"][service]["command"] = command
    before = compose_command_problems(compose)
    problems = [problem for problem in compose_command_problems(mutated) if problem not in before]
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{service}: ") and expected in problems[0]


def test_every_service_of_the_shop_probes_what_its_process_provides(compose):
    assert compose_healthcheck_problems(compose) == []
    tests = {
        name: service["healthcheck"]["test"][4:6]
        for name, service in compose["services"].items()
        if is_shop_image(service) and name != "migrate"
    }
    assert tests == {
        "web": ["http", "/health/live"],
        "worker": ["heartbeat", "worker"],
        "beat": ["heartbeat", "beat"],
        "email-consumer": ["heartbeat", "email-consumer"],
        "paypal-simulator": ["http", "http://127.0.0.1:${PAYPAL_SIMULATOR_PORT:-8001}/"],
    }


@pytest.mark.parametrize(
    ("service", "change", "expected"),
    [
        ("worker", {"test": ["CMD", "python", "-m", "shop.probe", "heartbeat", "beat"]}, "keeps 'worker'"),
        ("email-consumer", {"disable": True}, "without a health check"),
        ("beat", {"test": ["CMD", "python", "-m", "shop.prob", "heartbeat", "beat"]}, "shop.prob"),
        ("web", {"test": ["CMD", "python", "-m", "shop.probe", "http", "/"]}, "/health/live"),
        ("worker", {"test": ["CMD", "python", "-m", "shop.probe", "http", "/health/live"]}, "no http probe"),
        ("web", {"test": "curl -f http://localhost:8000/health/live"}, "exec form"),
    ],
)
def test_the_checker_reports_a_health_check_that_cannot_work(compose, service, change, expected):
    mutated = copy.deepcopy(compose)
    mutated["services"][service]["healthcheck"] = change
    problems = compose_healthcheck_problems(mutated)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{service}: ") and expected in problems[0]


def test_the_checker_knows_a_beat_without_the_heartbeat_scheduler_keeps_no_heartbeat(compose):
    mutated = copy.deepcopy(compose)
    mutated["services"]["beat"]["command"][-1] = "django_celery_beat.schedulers:DatabaseScheduler"
    assert compose_healthcheck_problems(mutated) == [
        "beat: probes the ['beat'] heartbeat, but its process keeps None fresh"
    ]


def test_web_runs_gunicorn_with_its_configuration_file(compose):
    web = compose["services"]["web"]
    assert service_command(web) == ["gunicorn", "--config", "gunicorn.conf.py"]
    assert dockerfile_cmd() == ["gunicorn", "--config", "gunicorn.conf.py"]
    # Docker sends SIGKILL after stop_grace_period: longer than gunicorn lets requests finish.
    config = gunicorn_config(service_command(web))
    assert int(web["stop_grace_period"].removesuffix("s")) > config.graceful_timeout


def test_gunicorn_feeds_the_order_pool_from_threads(settings):
    """gthread, with more threads than the pool and its queue hold: the queue can fill, and then the next
    placement gets 503 busy. Sync workers serve one request per process, and it never could."""
    config = gunicorn_config(["--config", "gunicorn.conf.py"])
    assert config.worker_class_str == "gthread"
    assert config.threads > settings.ORDER_WORKERS + settings.ORDER_QUEUE_SIZE
    assert config.wsgi_app == "shop.wsgi:application"
    assert config.bind == ["0.0.0.0:8000"]
    assert config.accesslog == "-"
    # Longer than a placement that waited its whole turn, then made two PayPal calls.
    longest = settings.ORDER_PLACEMENT_TIMEOUT_SECONDS + 2 * settings.PAYPAL_TIMEOUT_SECONDS
    assert config.timeout > longest and config.graceful_timeout > longest
    assert config.control_socket_disable


def test_gunicorn_takes_its_counts_and_port_from_the_environment(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "5")
    monkeypatch.setenv("GUNICORN_THREADS", "12")
    monkeypatch.setenv("PORT", "9123")
    config = gunicorn_config(["--config", "gunicorn.conf.py"])
    assert (config.workers, config.threads, config.bind) == (5, 12, ["0.0.0.0:9123"])
    assert gunicorn_variables() == {"PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS", "PROMETHEUS_MULTIPROC_DIR"}


def test_gunicorn_drains_the_order_pool_when_a_worker_exits(settings):
    from orders import worker_pool

    config = gunicorn_config(["--config", "gunicorn.conf.py"])
    pool = worker_pool.get_pool()
    config.worker_exit(None, None)
    assert not any(thread.is_alive() for thread in pool._threads)
    assert worker_pool._pool is None


def test_every_variable_given_to_a_service_is_read_by_someone(compose):
    assert compose_environment_problems(compose) == []


def test_the_checker_reports_a_variable_nobody_reads(compose):
    mutated = copy.deepcopy(compose)
    mutated["services"]["worker"]["environment"] = {**compose["services"]["worker"]["environment"]}
    mutated["services"]["worker"]["environment"]["SHOP_CURRENCYY"] = "USD"
    mutated["services"]["postgres"]["environment"]["POSTGRES_PASSWORT"] = "x"
    assert compose_environment_problems(mutated) == [
        "worker: the settings do not read SHOP_CURRENCYY",
        "postgres: postgres does not read POSTGRES_PASSWORT",
    ]


def test_the_shop_services_point_at_the_compose_services(compose):
    env = compose["services"]["web"]["environment"]
    assert env["DATABASE_URL"].startswith("postgres://shop:") and env["DATABASE_URL"].endswith(
        "@postgres:5432/shop"
    )
    assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert "mailpit:1025" in env["EMAIL_URL"]
    kafka = compose["services"]["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, one node
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    # Every service named in depends_on exists.
    for name, service in compose["services"].items():
        for dependency in service.get("depends_on") or {}:
            assert dependency in compose["services"], f"{name} depends on unknown {dependency}"
    for name in ("web", "worker", "beat", "email-consumer"):
        assert (
            compose["services"][name]["depends_on"]["migrate"]["condition"]
            == "service_completed_successfully"
        )
    assert compose["services"]["email-consumer"]["depends_on"]["kafka-init"]["condition"] == (
        "service_completed_successfully"
    )


def test_kafka_init_creates_the_topics_the_shop_uses(compose, settings):
    script = " ".join(compose["services"]["kafka-init"]["command"])
    assert "kafka-topics.sh" in script and "--create --if-not-exists" in script
    base = importlib.import_module("shop.settings.base")
    assert f"${{KAFKA_EMAIL_TOPIC:-{base.KAFKA_EMAIL_TOPIC}}}" in script
    assert f"${{KAFKA_EMAIL_DLQ_TOPIC:-{base.KAFKA_EMAIL_DLQ_TOPIC}}}" in script
    web = compose["services"]["web"]["environment"]
    assert web["KAFKA_EMAIL_TOPIC"] == f"${{KAFKA_EMAIL_TOPIC:-{base.KAFKA_EMAIL_TOPIC}}}"
    assert web["KAFKA_EMAIL_DLQ_TOPIC"] == f"${{KAFKA_EMAIL_DLQ_TOPIC:-{base.KAFKA_EMAIL_DLQ_TOPIC}}}"


# --- Dockerfile, Procfile, .env.example, README --------------------------------------------------


def test_dockerfile_builds_one_non_root_image_with_static_files():
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert stages and all(stage == "python:3.11-slim" for stage in stages)
    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    assert "collectstatic --noinput" in dockerfile
    assert "DJANGO_SETTINGS_MODULE=shop.settings.production" in dockerfile
    users = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert entry_point_problems(dockerfile_cmd()) == []
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env", "var"} <= set(ignored)


def dockerfile_build_environment() -> dict[str, str]:
    """The variables the build step exports to load the production settings (collectstatic)."""
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    (export,) = [line for line in dockerfile.splitlines() if line.startswith("RUN export ")]
    assignments = export.removeprefix("RUN export ").split("&&", 1)[0]
    return dict(word.split("=", 1) for word in shlex.split(assignments))


def test_the_image_builds_with_production_settings_that_load():
    import os
    import subprocess

    env = dockerfile_build_environment()
    assert env["DJANGO_SETTINGS_MODULE"] == "shop.settings.production"
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_image_probes_the_web_role_it_starts_by_default():
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    (healthcheck,) = [line for line in lines if line.startswith("HEALTHCHECK ")]
    probe = json.loads(healthcheck[healthcheck.index("CMD ") + 4 :])
    assert probe == ["python", "-m", "shop.probe", "http", "/health/live"]
    assert entry_point_problems(probe) == []
    assert Path(dockerfile_cmd()[0]).name == "gunicorn"


def test_procfile_names_real_entry_points():
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            processes[name] = command.strip()
    assert {"release", "web", "worker", "beat", "email"} <= set(processes)
    assert processes["web"] == "gunicorn --config gunicorn.conf.py"
    assert heartbeat_written_by(shlex.split(processes["beat"])) == "beat"
    problems = [
        f"{name}: {p}"
        for name, command in processes.items()
        for p in entry_point_problems(shlex.split(command))
    ]
    assert problems == []


def env_example_variables() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def env_file(text: str) -> dict[str, str]:
    """The assignments a .env file makes (commented lines make none)."""
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", text, flags=re.MULTILINE))


def interpolate(value: str, env: dict[str, str]) -> str:
    """docker compose's ${NAME}, ${NAME:-default} (nested too) and ${NAME:?error} against ``env``."""
    pattern = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?:(:-|:\?)([^${}]*))?\}")
    while match := pattern.search(value):
        name, operator, argument = match.groups()
        if env.get(name):
            replacement = env[name]
        elif operator == ":?":
            raise ValueError(f"compose refuses to start: {argument}")
        else:
            replacement = argument or ""
        value = value[: match.start()] + replacement + value[match.end() :]
    return value.replace("$$", "$")


def compose_service_environment(service: str, dotenv: dict[str, str]) -> dict[str, str]:
    """What compose gives ``service``'s container with this .env (and nothing else in the shell)."""
    environment = {}
    for name, value in load_compose()["services"][service]["environment"].items():
        if value is None:  # passed through when set
            if name in dotenv:
                environment[name] = dotenv[name]
        else:
            environment[name] = interpolate(str(value), dotenv)
    return environment


def run_check_deploy(environment: dict[str, str]):
    import os
    import subprocess

    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env={**clean, **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_with_env_example_as_is_asks_for_paypal_and_nothing_else():
    """A newcomer who copies .env.example and starts compose is told exactly what is missing."""
    environment = compose_service_environment("web", env_file((ROOT / ".env.example").read_text()))
    result = run_check_deploy(environment)
    assert result.returncode != 0
    missing = {line.split()[1] for line in result.stderr.splitlines() if line.startswith("  - ")}
    assert missing == {"PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET", "PAYPAL_WEBHOOK_ID"}


def test_compose_with_the_simulator_block_of_env_example_starts():
    """.env.example's simulator block, uncommented as it says, is a configuration the shop starts with
    (check --deploy warns: the simulator, a SITE_URL on localhost, plain http)."""
    text = (ROOT / ".env.example").read_text()
    lines = text.splitlines()
    (marker,) = [i for i, line in enumerate(lines) if "uncomment the next" in line]  # "... four lines"
    block = [
        line.removeprefix("# ") for line in lines[marker + 1 :] if re.match(r"^# [A-Z][A-Z0-9_]*=", line)
    ]
    dotenv = {**env_file(text), **env_file("\n".join(block[:4]))}
    web = compose_service_environment("web", dotenv)
    assert (web["PAYPAL_MODE"], web["PAYPAL_API_BASE"]) == ("simulator", "http://paypal-simulator:8001")
    simulator = compose_service_environment("paypal-simulator", dotenv)
    assert simulator["PAYPAL_SIMULATOR_PUBLIC_URL"] == "http://localhost:8001"
    for environment in (web, simulator):
        result = run_check_deploy(environment)
        assert result.returncode == 0, result.stderr
        assert "shop.W004" in result.stderr


def test_env_example_lists_every_contract_variable():
    listed = env_example_variables()
    assert [name for name in CONTRACT_VARIABLES if name not in listed] == []


def test_env_example_lists_only_variables_someone_reads():
    compose_text = (ROOT / "docker-compose.yml").read_text()
    for name in set(COMPOSE_ONLY_VARIABLES):
        assert f"${{{name}" in compose_text, f"{name} is not used by docker-compose.yml"
    unknown = (
        env_example_variables() - settings_variables() - gunicorn_variables() - set(COMPOSE_ONLY_VARIABLES)
    )
    assert unknown == set()


def test_env_example_sets_what_compose_requires():
    compose_text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", compose_text))
    active = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))
    assert required and required <= active


def test_dotenv_is_ignored_by_git():
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_readme_starts_with_the_two_commands_and_documents_every_variable():
    readme = (ROOT / "README.md").read_text()
    head = "\n".join(readme.splitlines()[:15])
    assert "make run" in head and "make test" in head
    undocumented = sorted(
        name
        for name in settings_variables(("base", "production")) | gunicorn_variables()
        if f"`{name}`" not in readme
    )
    assert undocumented == [], "README.md, Configuration: add these variables"
