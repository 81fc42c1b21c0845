"""The deployment files checked against the code: docker-compose.yml, Dockerfile, Procfile, .env.example.

There is no Docker engine here, so nothing is started: the compose file is parsed with PyYAML and every
command of the shop's image must name a real entry point (a management command with options it
accepts, a Celery sub-command of an importable app, an importable WSGI application), and every
environment variable a service of the shop's image is given must be one the settings read.
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
INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")

# Variables the shop's image reads without going through the settings modules.
APP_ENV_ALLOWLIST = {
    "DJANGO_SETTINGS_MODULE": "manage.py, shop.celery and shop.wsgi pick the settings module from it",
    "WEB_CONCURRENCY": "gunicorn's default number of worker processes",
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


def gunicorn_problems(args: list[str]) -> list[str]:
    from gunicorn.config import Config

    try:
        parsed = Config().parser().parse_args(args)
    except SystemExit:
        return [f"gunicorn does not accept: {shlex.join(args)}"]
    if len(parsed.args) != 1:
        return [f"gunicorn needs one WSGI application, got {parsed.args}"]
    module, _, attribute = parsed.args[0].partition(":")
    try:
        loaded = importlib.import_module(module)
    except ImportError as error:
        return [f"gunicorn application module {module!r} cannot be imported: {error}"]
    if not callable(getattr(loaded, attribute or "application", None)):
        return [f"{parsed.args[0]!r} is not a WSGI application"]
    return []


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


def compose_environment_problems(compose: dict) -> list[str]:
    read = settings_variables() | set(APP_ENV_ALLOWLIST)
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
    assert "pip install -r requirements.txt" in dockerfile
    assert "collectstatic --noinput" in dockerfile
    assert "DJANGO_SETTINGS_MODULE=shop.settings.production" in dockerfile
    users = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert entry_point_problems(dockerfile_cmd()) == []
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env", "var"} <= set(ignored)


def test_procfile_names_real_entry_points():
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            processes[name] = command.strip()
    assert {"release", "web", "worker", "beat", "email"} <= set(processes)
    problems = [
        f"{name}: {p}"
        for name, command in processes.items()
        for p in entry_point_problems(shlex.split(command))
    ]
    assert problems == []


def env_example_variables() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def test_env_example_lists_every_contract_variable():
    listed = env_example_variables()
    assert [name for name in CONTRACT_VARIABLES if name not in listed] == []


def test_env_example_lists_only_variables_someone_reads():
    compose_text = (ROOT / "docker-compose.yml").read_text()
    for name in set(COMPOSE_ONLY_VARIABLES):
        assert f"${{{name}" in compose_text, f"{name} is not used by docker-compose.yml"
    unknown = env_example_variables() - settings_variables() - set(COMPOSE_ONLY_VARIABLES)
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
        name for name in settings_variables(("base", "production")) if f"`{name}`" not in readme
    )
    assert undocumented == [], "README.md, Configuration: add these variables"
