"""The simulator's public URL: the approve links it hands out are where the payer's browser reaches
it, not the address it listens on (e.g. 0.0.0.0 in a container published on the host's localhost)."""

import os
import subprocess
import sys
from pathlib import Path

import requests

from payments.simulator import PayPalSimulator
from payments.tests.test_simulator import ORDER

ROOT = Path(__file__).resolve().parents[2]


def links(body: dict) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in body["links"]}


def test_approve_links_use_the_public_url_and_the_api_links_the_bind_address():
    simulator = PayPalSimulator(
        host="127.0.0.1", port=0, client_id="c", client_secret="s", public_url="http://localhost:8001/"
    ).start()
    try:
        local = f"http://127.0.0.1:{simulator.port}"
        token = requests.post(
            f"{local}/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=("c", "s"), timeout=5
        ).json()["access_token"]
        created = requests.post(
            f"{local}/v2/checkout/orders", json=ORDER, headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert created.status_code == 201, created.text
        order_id = created.json()["id"]
        hrefs = links(created.json())
        assert hrefs["approve"] == f"http://localhost:8001/checkoutnow?token={order_id}"
        assert hrefs["payer-action"] == hrefs["approve"]
        assert hrefs["self"] == f"{local}/v2/checkout/orders/{order_id}"
        # The page itself is served wherever the simulator listens.
        page = requests.get(f"{local}/checkoutnow?token={order_id}", timeout=5)
        assert page.status_code == 200 and "Approve" in page.text
    finally:
        simulator.stop()


def test_without_a_public_url_the_links_use_the_bind_address():
    simulator = PayPalSimulator(port=0).start()
    try:
        assert simulator.public_url == simulator.url == f"http://127.0.0.1:{simulator.port}"
    finally:
        simulator.stop()


def run_command(*args, env=None):
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_paypal_simulator", "--port", "0", "--no-webhooks", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "shop.settings.test", **(env or {})},
    )
    try:
        lines = [process.stdout.readline() for _ in range(2)]
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0, process.stderr.read()
    return lines[1].split(":", 1)[1].strip()


def test_the_command_takes_the_public_url_from_the_option_then_the_environment():
    assert run_command(env={"PAYPAL_SIMULATOR_PUBLIC_URL": "http://localhost:8001"}) == (
        "http://localhost:8001/checkoutnow?token=<order id>"
    )
    assert run_command(
        "--public-url", "https://paypal.demo.example", env={"PAYPAL_SIMULATOR_PUBLIC_URL": "http://x:1"}
    ) == ("https://paypal.demo.example/checkoutnow?token=<order id>")
    assert run_command().startswith("http://127.0.0.1:")
