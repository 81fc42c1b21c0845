"""/health/live and /health/ready (shop/health.py) against the real dependencies: PostgreSQL, Redis as the
Celery broker, the bundled Kafka-protocol broker."""

import time

import pytest

from notifications.kafka_broker import free_port
from shop.celery import app as celery_app

pytestmark = pytest.mark.django_db

REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def celery_broker():
    """Point the Celery app (not only the settings: the app read them once) at a broker URL."""
    before = celery_app.conf.broker_url

    def use(url):
        celery_app.conf.broker_url = url

    yield use
    celery_app.conf.broker_url = before


def test_live_answers_whatever_the_host_name_and_without_redirecting_to_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/health/live", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    # Every other path still goes through the host check and the redirect.
    assert client.get("/", HTTP_HOST="shop.example.com").status_code == 400
    assert client.get("/").status_code == 301


def test_ready_names_each_dependency_checked(client, kafka_settings, celery_broker):
    celery_broker(REDIS_URL)
    response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "cache", "celery_broker", "kafka"}
    assert all(check["status"] == "ok" and check["ms"] >= 0 for check in body["checks"].values())
    assert body["checks"]["celery_broker"]["transport"] == "redis"
    assert body["checks"]["kafka"] == {
        "status": "ok",
        "topic": kafka_settings.KAFKA_EMAIL_TOPIC,
        "partitions": 3,
        "ms": body["checks"]["kafka"]["ms"],
    }


def test_ready_is_503_when_the_celery_broker_does_not_answer(client, kafka_settings, celery_broker):
    celery_broker(f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    response = client.get("/health/ready")
    assert time.monotonic() - started < 10
    body = response.json()
    assert response.status_code == 503 and body["status"] == "unavailable"
    assert body["checks"]["celery_broker"]["status"] == "fail"
    assert body["checks"]["celery_broker"]["error"]  # the error's class only: no addresses, no secrets
    assert "127.0.0.1" not in response.content.decode()
    assert {name for name, check in body["checks"].items() if check["status"] == "ok"} == {
        "database",
        "cache",
        "kafka",
    }


def test_ready_is_503_when_kafka_does_not_answer(client, settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    response = client.get("/health/ready")
    assert time.monotonic() - started < 10
    assert response.status_code == 503
    assert response.json()["checks"]["kafka"]["status"] == "fail"


def test_ready_is_503_when_the_email_topic_is_missing(client, kafka_settings):
    kafka_settings.KAFKA_EMAIL_TOPIC = "no-such-topic"
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["kafka"] == {
        "status": "fail",
        "error": "the brokers have no topic no-such-topic",
        "ms": response.json()["checks"]["kafka"]["ms"],
    }


def test_ready_is_503_without_kafka_configured(client, settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["kafka"]["error"] == "KAFKA_BOOTSTRAP_SERVERS is not set"


def test_only_get_is_a_health_check(client):
    assert client.post("/health/live").status_code == 404
    assert client.get("/health/live/").status_code == 200
