"""Hostile requests against the live server (issue 11, "Hostile input").

Every hostile request to the API and to the PayPal webhook gets an answer the API documents (the
operation's responses in ``/api/schema/``; the webhook's own 400 and 413), a 4xx, with a JSON body
``{code, message}``, and writes nothing: no user, token, order, payment, hold, webhook event or
outbox row, and no stock held. The PayPal return and cancel pages answer 404 to a token with a
control character.
"""

import json
import random

import pytest
import requests
from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.test import Client
from rest_framework.authtoken.models import Token

from inventory.models import ReservedStock, Stock
from notifications.models import OutboxEvent
from orders.models import Order
from payments.models import Payment, WebhookEvent
from payments.tests.factories import ProductFactory, UserFactory, start_order

pytestmark = pytest.mark.django_db(transaction=True)

JSON = "application/json"
SIX_MB = 6 * 1024 * 1024
WEBHOOK = "/payments/paypal/webhook/"
# The webhook is not part of the OpenAPI document; these are its documented refusals.
WEBHOOK_REFUSALS = {400: {"invalid_json", "webhook_rejected"}, 413: {"request_too_large"}}


def _deep(depth: int, inner: str = "1") -> bytes:
    return ('{"a": ' * depth + inner + "}" * depth).encode()


# (name, body, content type, status, code) for every JSON endpoint; ``VALID`` stands for a body the
# endpoint would accept. The webhook answers the same where the body itself is unreadable, its own 400
# (webhook_rejected) otherwise.
VALID = object()
GARBAGE = random.Random(11).randbytes(4096)
HOSTILE_BODIES = [
    ("array nested 100000 deep", b"[" * 100_000 + b"]" * 100_000, JSON, 400, "invalid_json"),
    ("object nested 5000 deep", _deep(5000), JSON, 400, "invalid_json"),
    ("nested 40 deep, under the recursion limit", _deep(40), JSON, 400, "invalid_json"),
    ("binary garbage", GARBAGE, JSON, 400, "invalid_json"),
    ("invalid UTF-8", b'{"lines": "\xff\xfe\xc3"}', JSON, 400, "invalid_json"),
    ("UTF-8 byte order mark", b'\xef\xbb\xbf{"lines": []}', JSON, 400, "invalid_json"),
    ("not JSON", b"lines=1&quantity=2", JSON, 400, "invalid_json"),
    ("truncated JSON", b'{"lines": [{"product": 1', JSON, 400, "invalid_json"),
    ("NaN", b'{"lines": NaN}', JSON, 400, "invalid_json"),
    ("number out of range", b'{"lines": [{"product": 1e999, "quantity": 1}]}', JSON, 400, "invalid_json"),
    ("integer of 5000 digits", b'{"quantity": 1' + b"0" * 5000 + b"}", JSON, 400, "invalid_json"),
    ("NUL in a string", b'{"username": "a\\u0000b"}', JSON, 400, "invalid_json"),
    ("unpaired surrogate", b'{"username": "\\ud800"}', JSON, 400, "invalid_json"),
    ("charset that is a compressor", b"{}", f"{JSON}; charset=bz2_codec", 400, "invalid_json"),
    ("six megabytes", b'{"x": "' + b"a" * SIX_MB + b'"}', JSON, 413, "request_too_large"),
    ("JSON null", b"null", JSON, 400, "invalid"),
    ("a list", b"[]", JSON, 400, "invalid"),
    ("a string", b'"lines"', JSON, 400, "invalid"),
    ("empty object", b"{}", JSON, 400, "invalid"),
    ("plain text", VALID, "text/plain", 415, "unsupported_media_type"),
    ("form", VALID, "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("multipart", VALID, "multipart/form-data; boundary=xyz", 415, "unsupported_media_type"),
    ("XML", VALID, "application/xml", 415, "unsupported_media_type"),
    ("no content type", VALID, None, 415, "unsupported_media_type"),
]


@pytest.fixture
def world(live_server, paypal, settings):
    """A shopper with a token, a product in stock and a pending order waiting at PayPal."""
    settings.SITE_URL = live_server.url
    shopper = UserFactory(username="alice", password="alice-pass-42")
    product = ProductFactory(on_hand=5)
    order = start_order(user=shopper, lines=[(product, 1)])
    token = Token.objects.create(user=shopper).key
    schema = requests.get(f"{live_server.url}/api/schema/?format=json", timeout=10).json()
    return {
        "url": live_server.url,
        "shopper": shopper,
        "product": product,
        "order": order,
        "token": token,
        "schema": schema,
    }


def snapshot() -> dict:
    return {
        "users": get_user_model().objects.count(),
        "tokens": Token.objects.count(),
        "orders": list(Order.objects.order_by("pk").values_list("pk", "status")),
        "payments": list(Payment.objects.order_by("pk").values_list("pk", "status")),
        "holds": ReservedStock.objects.count(),
        "reserved": Stock.objects.aggregate(total=Sum("reserved"))["total"],
        "webhook events": WebhookEvent.objects.count(),
        "outbox": OutboxEvent.objects.count(),
    }


def documented_statuses(schema: dict, path: str, method: str) -> set[int]:
    return {int(code) for code in schema["paths"][path][method.lower()]["responses"]}


def problems_with(response, *, allowed: dict[int, set[str]] | set[int], status: int | None, code: str | None):
    """What is wrong with a hostile request's answer, or an empty list."""
    problems = []
    if response.status_code not in allowed or not 400 <= response.status_code < 500:
        problems.append(f"status {response.status_code} is not a documented 4xx ({sorted(allowed)})")
    if status is not None and response.status_code != status:
        problems.append(f"status {response.status_code}, expected {status}")
    if not response.headers.get("Content-Type", "").startswith(JSON):
        return [*problems, f"not JSON: {response.headers.get('Content-Type')}: {response.text[:200]!r}"]
    body = response.json()
    if not (isinstance(body.get("code"), str) and isinstance(body.get("message"), str) and body["message"]):
        problems.append(f"body is not {{code, message}}: {body}")
    elif code is not None and body["code"] != code:
        problems.append(f"code {body['code']!r}, expected {code!r}")
    elif isinstance(allowed, dict) and body["code"] not in allowed.get(response.status_code, ()):
        problems.append(f"code {body['code']!r} is not documented for {response.status_code}")
    return problems


def send_all(world, *, path, valid_body, headers=None, webhook=False):
    """Send every hostile body to ``path``; return the problems, one line per case."""
    allowed = WEBHOOK_REFUSALS if webhook else documented_statuses(world["schema"], path, "post")
    problems = []
    for name, body, content_type, status, code in HOSTILE_BODIES:
        if body is VALID:
            body = json.dumps(valid_body).encode()
        if webhook and (code not in ("invalid_json", "request_too_large") or content_type != JSON):
            status, code = 400, None  # the webhook reads any content type; it then cannot verify the event
        request_headers = {**(headers or {}), **({"Content-Type": content_type} if content_type else {})}
        response = requests.post(f"{world['url']}{path}", data=body, headers=request_headers, timeout=60)
        problems += [
            f"{name}: {problem}"
            for problem in problems_with(response, allowed=allowed, status=status, code=code)
        ]
    return problems


def send_malformed(world, *, path, payloads: dict, headers=None):
    """POST each JSON payload of a shape the schema refuses: each must be the documented 400 ``invalid``."""
    allowed = documented_statuses(world["schema"], path, "post")
    problems = []
    for name, payload in payloads.items():
        response = requests.post(f"{world['url']}{path}", json=payload, headers=headers, timeout=30)
        problems += [
            f"{name}: {p}" for p in problems_with(response, allowed=allowed, status=400, code="invalid")
        ]
    return problems


def test_hostile_bodies_on_place_order(world):
    before = snapshot()
    headers = {"Authorization": f"Token {world['token']}"}
    valid = {"lines": [{"product": world["product"].pk, "quantity": 1}]}
    problems = send_all(world, path="/api/orders/", valid_body=valid, headers=headers)

    # Shapes the schema refuses, each refused by the API with the documented 400.
    product = world["product"].pk
    problems += send_malformed(
        world,
        path="/api/orders/",
        headers=headers,
        payloads={
            "unknown field": {**valid, "total": "0.01"},
            "unknown field of a line": {"lines": [{"product": product, "quantity": 1, "unit_price": "0.01"}]},
            "no lines": {"lines": []},
            "more lines than allowed": {"lines": [{"product": product, "quantity": 1}] * 51},
            "quantity over the limit": {"lines": [{"product": product, "quantity": 101}]},
            "huge quantity": {"lines": [{"product": product, "quantity": 10**30}]},
            "huge negative quantity": {"lines": [{"product": product, "quantity": -(10**30)}]},
            "product id over bigint": {"lines": [{"product": 2**64, "quantity": 1}]},
            "quantity as a float": {"lines": [{"product": product, "quantity": 1.0}]},
        },
    )

    # Idempotency-Key: control characters (NUL first) and lengths the schema refuses.
    allowed = documented_statuses(world["schema"], "/api/orders/", "post")
    for name, key in {
        "NUL": "key\x00one",
        "only NUL": "\x00",
        "escape": "key\x1b[31m",
        "DEL": "key\x7f",
        "256 characters": "k" * 256,
        "empty": "",
    }.items():
        response = requests.post(
            f"{world['url']}/api/orders/", json=valid, headers={**headers, "Idempotency-Key": key}, timeout=30
        )
        problems += [
            f"Idempotency-Key {name}: {p}"
            for p in problems_with(response, allowed=allowed, status=400, code="invalid")
        ]

    assert problems == []
    assert snapshot() == before


def test_hostile_bodies_on_register(world):
    before = snapshot()
    valid = {"username": "mallory", "email": "mallory@example.com", "password": "a-strong-pass-42"}
    problems = send_all(world, path="/api/auth/register/", valid_body=valid)
    problems += send_malformed(
        world,
        path="/api/auth/register/",
        payloads={
            "unknown field": {**valid, "is_staff": True},
            "username too long": {**valid, "username": "m" * 151},
            "username with a space": {**valid, "username": " mallory"},
            "email too long": {**valid, "email": "m" * 250 + "@example.com"},
            "password too long": {**valid, "password": "p" * 4097},
            "password as a number": {**valid, "password": 12345678901234567890},
        },
    )
    assert problems == []
    assert snapshot() == before


def test_hostile_bodies_on_token(world):
    before = snapshot()
    valid = {"username": "alice", "password": "alice-pass-42"}
    problems = send_all(world, path="/api/auth/token/", valid_body=valid)
    problems += send_malformed(
        world,
        path="/api/auth/token/",
        payloads={
            "unknown field": {**valid, "scope": "admin"},
            "username too long": {**valid, "username": "a" * 151},
            "password as an object": {**valid, "password": {"$ne": ""}},
        },
    )
    assert problems == []
    assert snapshot() == before


def test_hostile_bodies_on_the_paypal_webhook(world):
    before = snapshot()
    order = world["order"]
    event = {
        "id": "WH-hostile",
        "event_type": "CHECKOUT.ORDER.APPROVED",
        "resource": {"id": order.payment.provider_order_id},
    }
    problems = send_all(world, path=WEBHOOK, valid_body=event, webhook=True)
    assert problems == []
    assert snapshot() == before


def test_unknown_api_paths_and_methods_answer_json(world):
    headers = {"Authorization": f"Token {world['token']}"}
    url = world["url"]
    for method, path, status, code in [
        ("GET", "/api/orders/null,null/", 404, "not_found"),
        ("POST", "/api/orders/null,null/", 404, "not_found"),
        ("GET", "/api/orders/-1/", 404, "not_found"),
        ("GET", f"/api/orders/{2**70}/", 404, "not_found"),
        ("GET", "/api/orders", 404, "not_found"),  # no slash: not a redirect that drops the body
        ("DELETE", "/api/nothing/here/", 404, "not_found"),
        ("GET", "/api/%00/", 404, "not_found"),
        ("DELETE", "/api/orders/", 405, "method_not_allowed"),
        ("PUT", "/api/auth/token/", 405, "method_not_allowed"),
        ("GET", f"/api/orders/{world['order'].pk}/cancel/", 405, "method_not_allowed"),
        ("POST", "/api/schema/", 405, "method_not_allowed"),
        ("POST", "/api/docs/", 405, "method_not_allowed"),
    ]:
        response = requests.request(method, f"{url}{path}", headers=headers, timeout=30)
        assert (response.status_code, response.headers["Content-Type"]) == (status, JSON), (method, path)
        assert response.json()["code"] == code and response.json()["message"], (method, path)
    # The pages keep their HTML 404.
    page = requests.get(f"{url}/no-such-page/", timeout=30)
    assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html")


def test_paypal_return_and_cancel_refuse_control_characters_with_404(world):
    client = Client()
    client.force_login(world["shopper"])
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    real = world["order"].payment.provider_order_id
    before = snapshot()
    for page in ("return", "cancel"):
        for token in (
            "%00",
            f"{real}%00",
            f"%00{real}",
            f"{real}%0A",
            f"{real}%1B",
            f"{real}%7F",
            "%00" * 300,
        ):
            response = session.get(
                f"{world['url']}/payments/paypal/{page}/?token={token}", allow_redirects=False, timeout=30
            )
            assert response.status_code == 404, (page, token, response.status_code)
    assert snapshot() == before
    assert Order.objects.get(pk=world["order"].pk).status == "PENDING"
