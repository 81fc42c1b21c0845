"""GET /metrics of the web role (core/metrics.py): its series, who may read it, and gunicorn's
multiprocess mode."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured

from notifications.kafka_broker import free_port
from orders.models import FailureReason
from tests.metrics import parse_metrics, scrape

ROOT = Path(__file__).resolve().parents[2]

WEB_SERIES = {
    "shop_order_placement_seconds_bucket",
    "shop_order_placement_seconds_count",
    "shop_order_placement_seconds_sum",
    "shop_order_pool_queue_depth",
    "shop_order_busy_total",
    "shop_orders_total",
    "shop_outbox_backlog",
    "shop_outbox_oldest_unpublished_age_seconds",
}


@pytest.mark.django_db
def test_metrics_names_every_series_of_the_web_role(client):
    samples = scrape(client)
    assert samples.names() >= WEB_SERIES
    assert samples.value("shop_orders_total", outcome="placed", reason="") is not None
    assert samples.value("shop_orders_total", outcome="succeeded", reason="") is not None
    for reason in FailureReason:  # every reason is a series before its first order
        assert samples.value("shop_orders_total", outcome="failed", reason=reason.value) is not None
    assert samples.value("shop_outbox_backlog") == 0
    assert samples.value("shop_outbox_oldest_unpublished_age_seconds") == 0


@pytest.mark.django_db
def test_openmetrics_is_answered_to_a_client_that_asks_for_it(client):
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().endswith("# EOF\n")


@pytest.mark.django_db
def test_metrics_are_answered_before_the_host_check_and_the_https_redirect(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    samples = scrape(client, HTTP_HOST="10.1.2.3:8000")  # Prometheus scrapes the container's address
    assert "shop_orders_total" in samples.names()
    assert client.get("/metrics", HTTP_HOST="10.1.2.3:8000", REQUEST_METHOD="HEAD").status_code == 200


# --- who may read it -----------------------------------------------------------------------------


def not_found(response) -> bool:
    return response.status_code == 404 and b"shop_orders_total" not in response.content


@pytest.mark.django_db
def test_metrics_disabled_is_a_plain_404(client, settings):
    settings.METRICS_ENABLED = False
    assert not_found(client.get("/metrics"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("10.4.0.17", True),
        ("172.20.1.1", True),
        ("192.168.1.9", True),
        ("::1", True),
        ("fd00::5", True),
        ("::ffff:10.0.0.3", True),  # IPv4-mapped
        ("8.8.8.8", False),
        ("172.32.0.1", False),
        ("2001:db8::1", False),
        ("", False),
    ],
)
def test_metrics_answer_only_loopback_and_private_addresses_by_default(client, address, allowed):
    response = client.get("/metrics", REMOTE_ADDR=address)
    assert response.status_code == 200 if allowed else not_found(response)


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED"])
def test_a_request_that_came_through_a_proxy_is_refused(client, header):
    # Behind a proxy on the private network every shopper's request comes from an allowed address.
    assert not_found(client.get("/metrics", REMOTE_ADDR="10.0.0.2", **{header: "203.0.113.7"}))


@pytest.mark.django_db
def test_metrics_allowed_ips_names_the_networks(client, settings):
    settings.METRICS_ALLOWED_IPS = ["203.0.113.0/24"]
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.50").status_code == 200
    assert not_found(client.get("/metrics", REMOTE_ADDR="127.0.0.1"))


@pytest.mark.django_db
def test_a_wrong_cidr_is_a_configuration_error(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/33"]
    with pytest.raises(ImproperlyConfigured, match="METRICS_ALLOWED_IPS"):
        client.get("/metrics")


def test_production_serves_metrics_only_when_told(tmp_path):
    from shop.tests.test_settings import run_settings

    base = {
        "DJANGO_SECRET_KEY": "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "shop.example.com",
        "DATABASE_URL": "postgres://u:p@db:5432/shop",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "EMAIL_URL": "smtp://relay:25",
        "PAYPAL_MODE": "sandbox",
        "PAYPAL_CLIENT_ID": "id",
        "PAYPAL_CLIENT_SECRET": "secret",
        "PAYPAL_WEBHOOK_ID": "hook",
    }
    code = "import django; from django.conf import settings; django.setup(); print(settings.METRICS_ENABLED)"
    assert run_settings("shop.settings.production", base, code=code).stdout.strip() == "False"
    told = {**base, "METRICS_ENABLED": "true"}
    assert run_settings("shop.settings.production", told, code=code).stdout.strip() == "True"
    assert run_settings("shop.settings.local", {}, code=code).stdout.strip() == "True"


# --- gunicorn with several processes --------------------------------------------------------------


def wait_for_http(url: str, server: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=5, headers={"Connection": "close"}).status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening yet, or still loading
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def scrape_http(url: str):
    # A new connection each time: gunicorn hands it to either process.
    return parse_metrics(requests.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10).text)


def pids_of(directory: Path, pattern: str) -> set[int]:
    return {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob(pattern)}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("directory", ["given", "temporary"])
def test_gunicorn_processes_add_up_their_series_in_multiprocess_mode(tmp_path, user, directory):
    """gunicorn with two worker processes, in PROMETHEUS_MULTIPROC_DIR or a directory of its own: a
    scrape counts the orders every process placed, also once the processes that placed them were
    killed (and replaced), and the live gauges of a killed process stop counting (child_exit)."""
    from rest_framework.authtoken.models import Token

    from inventory.tests.factories import ProductFactory
    from notifications.tests.helpers import test_database_url

    mug = ProductFactory(on_hand=100)
    token = Token.objects.create(user=user).key
    given_dir = tmp_path / "prometheus"
    given_dir.mkdir()
    (given_dir / "counter_99999.db").write_bytes(b"left over from a previous run")
    port = free_port("127.0.0.1")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PROMETHEUS_"))},
        "DJANGO_SETTINGS_MODULE": "shop.settings.base",
        "DATABASE_URL": test_database_url(),
        # Nobody listens there: each placement's PayPal order fails at once (502, the order FAILED).
        "PAYPAL_API_BASE": f"http://127.0.0.1:{free_port('127.0.0.1')}",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        "WEB_CONCURRENCY": "2",
        "PYTHONUNBUFFERED": "1",
        **({"PROMETHEUS_MULTIPROC_DIR": str(given_dir)} if directory == "given" else {}),
    }
    log_path = tmp_path / "gunicorn.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_http(f"{url}/health/live", server, log_path)
        (used,) = re.findall(r"prometheus-client multiprocess mode in (\S+)", log_path.read_text())
        multiproc_dir = Path(used)
        if directory == "given":
            assert multiproc_dir == given_dir
            assert not (given_dir / "counter_99999.db").exists()  # emptied when gunicorn started
        else:
            assert multiproc_dir.name.startswith("shop-prometheus-")

        placed = 6
        for _ in range(placed):
            response = requests.post(
                f"{url}/api/orders/",
                json={"lines": [{"product": mug.pk, "quantity": 1}]},
                headers={"Authorization": f"Token {token}", "Connection": "close"},
                timeout=30,
            )
            assert response.status_code == 502, response.text  # placed, then PayPal unreachable
        samples = parse_metrics(
            requests.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10).text
        )
        assert samples.value("shop_orders_total", outcome="placed", reason="") == placed
        assert samples.value("shop_orders_total", outcome="failed", reason="gateway_error") == placed

        # Kill every process that placed an order: the processes gunicorn starts instead never saw them.
        placers = pids_of(multiproc_dir, "counter_*.db")
        assert placers and placers <= pids_of(multiproc_dir, "gauge_livesum_*.db")
        for pid in placers:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pids_of(multiproc_dir, "gauge_livesum_*.db") & placers:  # child_exit marked them dead
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        wait_for_http(f"{url}/health/live", server, log_path)
        for _ in range(4):
            samples = parse_metrics(
                requests.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10).text
            )
            assert samples.value("shop_orders_total", outcome="placed", reason="") == placed
            assert samples.value("shop_order_placement_seconds_count", outcome="placed") == placed
            assert samples.value("shop_order_pool_queue_depth") == 0
        assert not pids_of(multiproc_dir, "counter_*.db") & {server.pid}  # the master counts nothing
    finally:
        server.terminate()
        server.wait(60)
    # A directory of its own is gone with gunicorn; a given one is left for the next start to empty.
    assert multiproc_dir.exists() == (directory == "given")
