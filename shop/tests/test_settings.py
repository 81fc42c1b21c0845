"""Settings are read in a fresh interpreter so that each case sees only its own environment."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "DATABASE": settings.DATABASES["default"]["NAME"],
    "DATABASE_ENGINE": settings.DATABASES["default"]["ENGINE"],
    "DATABASE_OPTIONS": settings.DATABASES["default"].get("OPTIONS", {}),
    "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    "KAFKA_BOOTSTRAP_SERVERS": settings.KAFKA_BOOTSTRAP_SERVERS,
    "KAFKA_EMAIL_TOPIC": settings.KAFKA_EMAIL_TOPIC,
    "PAYPAL_MODE": settings.PAYPAL_MODE,
    "PAYPAL_CLIENT_ID": settings.PAYPAL_CLIENT_ID,
    "PAYPAL_CLIENT_SECRET": settings.PAYPAL_CLIENT_SECRET,
    "PAYPAL_WEBHOOK_ID": settings.PAYPAL_WEBHOOK_ID,
    "PAYPAL_API_BASE": settings.PAYPAL_API_BASE,
    "EMAIL_HOST": settings.EMAIL_HOST,
    "EMAIL_PORT": settings.EMAIL_PORT,
    "RESERVATION_TTL_SECONDS": settings.RESERVATION_TTL_SECONDS,
    "ORDER_WORKERS": settings.ORDER_WORKERS,
    "ORDER_QUEUE_SIZE": settings.ORDER_QUEUE_SIZE,
    "SHOP_CURRENCY": settings.SHOP_CURRENCY,
}))
"""


def clean_environment(module, env):
    """This process's environment without the shop's variables, plus ``env``."""
    ours = ("DJANGO_", "PAYPAL_", "KAFKA_", "ORDER_")
    mine = {"DATABASE_URL", "CELERY_BROKER_URL", "EMAIL_URL", "SITE_URL", "HEARTBEAT_DIR"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ours) and k not in mine}
    return {**clean, **env, "DJANGO_SETTINGS_MODULE": module}


def run_settings(module, env, *, code=PROBE):
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean_environment(module, env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_contract_variable_is_read():
    env = {
        "DATABASE_URL": "postgres://u:p@db.example:5432/shopdb",
        "CELERY_BROKER_URL": "redis://redis.example:6379/3",
        "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
        "KAFKA_EMAIL_TOPIC": "emails-x",
        "PAYPAL_MODE": "sandbox",
        "PAYPAL_CLIENT_ID": "cid",
        "PAYPAL_CLIENT_SECRET": "csecret",
        "PAYPAL_WEBHOOK_ID": "wh-1",
        "PAYPAL_API_BASE": "http://paypal.example:9000",
        "EMAIL_URL": "smtp://mail.example:2525",
        "RESERVATION_TTL_SECONDS": "123",
        "ORDER_WORKERS": "7",
        "ORDER_QUEUE_SIZE": "9",
        "SHOP_CURRENCY": "EUR",
    }
    result = run_settings("shop.settings.local", env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen == {
        "DATABASE": "shopdb",
        "DATABASE_ENGINE": "django.db.backends.postgresql",
        "DATABASE_OPTIONS": {},
        "CELERY_BROKER_URL": "redis://redis.example:6379/3",
        "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
        "KAFKA_EMAIL_TOPIC": "emails-x",
        "PAYPAL_MODE": "sandbox",
        "PAYPAL_CLIENT_ID": "cid",
        "PAYPAL_CLIENT_SECRET": "csecret",
        "PAYPAL_WEBHOOK_ID": "wh-1",
        "PAYPAL_API_BASE": "http://paypal.example:9000",
        "EMAIL_HOST": "mail.example",
        "EMAIL_PORT": 2525,
        "RESERVATION_TTL_SECONDS": 123,
        "ORDER_WORKERS": 7,
        "ORDER_QUEUE_SIZE": 9,
        "SHOP_CURRENCY": "EUR",
    }


def test_local_defaults_need_nothing_installed():
    result = run_settings("shop.settings.local", {})
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["DATABASE_ENGINE"] == "django.db.backends.sqlite3"
    assert seen["DATABASE"].endswith("var/shop.sqlite3")
    # Concurrent writers queue for the lock instead of failing half-way.
    assert seen["DATABASE_OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in seen["DATABASE_OPTIONS"]["init_command"]
    assert seen["CELERY_BROKER_URL"] == "filesystem://"
    assert seen["KAFKA_BOOTSTRAP_SERVERS"] == ""
    assert seen["KAFKA_EMAIL_TOPIC"] == "email-notification"
    assert seen["PAYPAL_MODE"] == "simulator"
    assert seen["PAYPAL_API_BASE"].startswith("http://127.0.0.1:")
    assert (seen["RESERVATION_TTL_SECONDS"], seen["ORDER_WORKERS"], seen["SHOP_CURRENCY"]) == (900, 5, "USD")


# A complete production environment, as a filled-in .env would give it.
PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": "x" * 20 + "-a-long-random-production-secret-" + "y" * 20,
    "DJANGO_ALLOWED_HOSTS": "shop.example.com",
    "DATABASE_URL": "postgres://u:p@db.example:5432/shopdb",
    "CELERY_BROKER_URL": "redis://redis.example:6379/0",
    "CACHE_URL": "redis://redis.example:6379/1",
    "KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9092",
    "EMAIL_URL": "smtp+tls://mailer:secret@relay.example:587",
    "SITE_URL": "https://shop.example.com",
    "PAYPAL_MODE": "live",
    "PAYPAL_CLIENT_ID": "live-client",
    "PAYPAL_CLIENT_SECRET": "live-secret",
    "PAYPAL_WEBHOOK_ID": "WH-123",
}
REQUIRED_IN_PRODUCTION = [
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "EMAIL_URL",
    "PAYPAL_MODE",
    "PAYPAL_CLIENT_ID",
    "PAYPAL_CLIENT_SECRET",
    "PAYPAL_WEBHOOK_ID",
]


def check_deploy(env, *, fail_level="ERROR"):
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", fail_level],
        cwd=ROOT,
        env=clean_environment("shop.settings.production", env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def without(*names, **changes):
    return {**{k: v for k, v in PRODUCTION_ENV.items() if k not in names}, **changes}


def test_production_settings_pass_check_deploy_with_a_complete_environment():
    result = check_deploy(PRODUCTION_ENV, fail_level="WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("name", REQUIRED_IN_PRODUCTION)
def test_production_refuses_to_start_without_each_required_variable(name):
    result = check_deploy(without(name))
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()
    assert any(line.startswith("django.core.exceptions.ImproperlyConfigured") for line in message)
    problems = [line for line in message if line.startswith("  - ")]
    assert len(problems) == 1 and problems[0].startswith(f"  - {name} "), result.stderr


def test_production_names_every_missing_variable_at_once():
    """The old minimum (a secret, hosts, a database) is no longer a production."""
    old_minimum = ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL")
    env = {name: PRODUCTION_ENV[name] for name in old_minimum}
    result = check_deploy(env)
    assert result.returncode != 0
    missing = {line.split()[1] for line in result.stderr.splitlines() if line.startswith("  - ")}
    assert missing == set(REQUIRED_IN_PRODUCTION) - set(env)


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_variable_is_a_missing_one(value):
    result = check_deploy(without(KAFKA_BOOTSTRAP_SERVERS=value))
    assert result.returncode != 0 and "  - KAFKA_BOOTSTRAP_SERVERS is not set" in result.stderr


def test_production_refuses_an_unknown_paypal_mode():
    result = check_deploy(without(PAYPAL_MODE="paypal"))
    assert result.returncode != 0
    assert "  - PAYPAL_MODE is 'paypal': set it to sandbox or live" in result.stderr


def test_the_simulator_needs_the_explicit_opt_in_in_production():
    credentials = ("PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET", "PAYPAL_WEBHOOK_ID")
    simulator = without(*credentials, PAYPAL_MODE="simulator")
    refused = check_deploy(simulator)
    assert refused.returncode != 0
    assert "PAYPAL_MODE=simulator takes no money" in refused.stderr
    assert "PAYPAL_SIMULATOR_IN_PRODUCTION=true" in refused.stderr

    allowed = check_deploy({**simulator, "PAYPAL_SIMULATOR_IN_PRODUCTION": "true"})
    assert allowed.returncode == 0, allowed.stderr
    warnings = allowed.stderr.split("WARNINGS:", 1)[1]
    assert "shop.W004" in warnings  # still a warning: no payment is real


def test_check_deploy_warns_about_what_only_suits_one_machine():
    # No CELERY_BROKER_URL, no SITE_URL: base's defaults, the filesystem transport and 127.0.0.1.
    env = without(
        "CELERY_BROKER_URL", "SITE_URL", "CACHE_URL", DATABASE_URL="sqlite:////tmp/shop-check.sqlite3"
    )
    result = check_deploy(env)
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.split("WARNINGS:", 1)[1]
    for warning in ("shop.W001", "shop.W002", "shop.W003", "shop.W005"):
        assert warning in warnings
    assert "filesystem transport" in warnings and "SITE_URL is http://127.0.0.1:8000" in warnings
    assert "shop.W004" not in result.stderr


def test_production_reads_its_own_order_queue_default():
    result = run_settings("shop.settings.production", PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ORDER_QUEUE_SIZE"] == 10
    result = run_settings("shop.settings.production", {**PRODUCTION_ENV, "ORDER_QUEUE_SIZE": "3"})
    assert json.loads(result.stdout)["ORDER_QUEUE_SIZE"] == 3


@pytest.mark.parametrize("module", ["shop.settings.local", "shop.settings.test"])
def test_non_production_settings_import(module):
    env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/shop"} if module.endswith("test") else {}
    result = run_settings(module, env)
    assert result.returncode == 0, result.stderr


SETTLE_CONCURRENCY_PROBE = """
import django
from django.conf import settings
django.setup()
print(settings.PAYPAL_SETTLE_CONCURRENCY)
"""


def test_paypal_settle_concurrency_is_read_with_a_default_of_8():
    assert run_settings("shop.settings.local", {}, code=SETTLE_CONCURRENCY_PROBE).stdout.strip() == "8"
    result = run_settings(
        "shop.settings.local", {"PAYPAL_SETTLE_CONCURRENCY": "3"}, code=SETTLE_CONCURRENCY_PROBE
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"


@pytest.mark.parametrize("value", ["0", "-2"])
def test_paypal_settle_concurrency_below_one_refuses_to_start(value):
    result = run_settings(
        "shop.settings.local", {"PAYPAL_SETTLE_CONCURRENCY": value}, code=SETTLE_CONCURRENCY_PROBE
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"PAYPAL_SETTLE_CONCURRENCY must be a whole number of at least 1, not {value}" in result.stderr
