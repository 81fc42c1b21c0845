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


def run_settings(module, env, *, code=PROBE, args=("-c",)):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PAYPAL_", "KAFKA_"))}
    clean.pop("DATABASE_URL", None)
    clean.update(env, DJANGO_SETTINGS_MODULE=module)
    return subprocess.run(
        [sys.executable, *args, code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
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


PRODUCTION_ENV = {
    "DJANGO_ALLOWED_HOSTS": "shop.example.com",
    "DATABASE_URL": "postgres://u:p@db.example:5432/shopdb",
}


def test_production_refuses_to_start_without_a_secret_key():
    result = run_settings("shop.settings.production", PRODUCTION_ENV)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_settings_pass_check_deploy():
    env = {**PRODUCTION_ENV, "DJANGO_SECRET_KEY": "x" * 20 + "-a-long-random-production-secret-" + "y" * 20}
    result = run_settings("shop.settings.production", env, code="check", args=("manage.py",))
    assert result.returncode == 0, result.stderr
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            **env,
            "DJANGO_SETTINGS_MODULE": "shop.settings.production",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module", ["shop.settings.local", "shop.settings.test"])
def test_non_production_settings_import(module):
    env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/shop"} if module.endswith("test") else {}
    result = run_settings(module, env)
    assert result.returncode == 0, result.stderr
