"""Rate limits (API and pages, counted in the shared cache) and the cap on unpaid orders."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from inventory.tests.factories import ProductFactory
from orders.models import Order
from orders.services import order_cancel, order_complete

pytestmark = pytest.mark.django_db

LIMITS = {"anon": "1000/minute", "user": "1000/minute", "auth": "5/minute", "order_placement": "1000/minute"}


@pytest.fixture
def limits(settings):
    settings.API_THROTTLE_RATES = dict(LIMITS)
    return settings


@pytest.fixture
def no_paypal(monkeypatch):
    monkeypatch.setattr("checkout.services.checkout_payment_link", lambda order: None)


def test_the_sixth_token_request_in_a_minute_is_throttled(limits, django_user_model):
    django_user_model.objects.create_user("hana", password="pw-hana-12345")
    client = APIClient()
    answers = [
        client.post("/api/auth/token/", {"username": "hana", "password": "wrong"}, format="json")
        for _ in range(5)
    ]
    assert [answer.status_code for answer in answers] == [400] * 5

    sixth = client.post("/api/auth/token/", {"username": "hana", "password": "pw-hana-12345"}, format="json")

    assert sixth.status_code == 429
    assert sixth["Content-Type"] == "application/json"
    assert sixth.json()["code"] == "throttled" and sixth.json()["message"]
    assert 1 <= int(sixth["Retry-After"]) <= 60
    other_address = APIClient(REMOTE_ADDR="10.0.0.9")
    assert (
        other_address.post(
            "/api/auth/token/", {"username": "hana", "password": "pw-hana-12345"}, format="json"
        ).status_code
        == 200
    )


def test_registering_shares_the_tight_rate(limits):
    client = APIClient()
    for index in range(5):
        body = {"username": f"new{index}", "email": f"new{index}@example.com", "password": "a-strong-pass-42"}
        assert client.post("/api/auth/register/", body, format="json").status_code == 201
    body = {"username": "new9", "email": "new9@example.com", "password": "a-strong-pass-42"}
    assert client.post("/api/auth/register/", body, format="json").status_code == 429


@pytest.mark.django_db(transaction=True)  # placements run on the pool's own connections
def test_order_placement_has_its_own_rate(limits, auth_client, no_paypal):
    limits.API_THROTTLE_RATES = {**LIMITS, "order_placement": "2/minute"}
    mug = ProductFactory(on_hand=50)
    body = {"lines": [{"product": mug.pk, "quantity": 1}]}
    assert [auth_client.post("/api/orders/", body, format="json").status_code for _ in range(2)] == [201, 201]
    third = auth_client.post("/api/orders/", body, format="json")
    assert third.status_code == 429 and third.json()["code"] == "throttled" and third["Retry-After"]
    assert auth_client.get("/api/orders/").status_code == 200  # reading is not placing
    assert Order.objects.count() == 2


@pytest.mark.django_db(transaction=True)  # placements run on the pool's own connections
def test_a_shopper_at_the_pending_cap_waits_until_paying_or_cancelling(
    settings, auth_client, user, no_paypal
):
    settings.ORDER_MAX_PENDING_PER_USER = 3
    mug = ProductFactory(on_hand=50)
    body = {"lines": [{"product": mug.pk, "quantity": 1}]}
    placed = [auth_client.post("/api/orders/", body, format="json").json()["id"] for _ in range(3)]

    refused = auth_client.post("/api/orders/", body, format="json")

    assert refused.status_code == 429
    assert refused.json()["code"] == "too_many_pending_orders"
    assert 0 < int(refused["Retry-After"]) <= settings.RESERVATION_TTL_SECONDS
    assert Order.objects.filter(user=user).count() == 3
    order_cancel(user=user, order_id=placed[0])
    assert auth_client.post("/api/orders/", body, format="json").status_code == 201
    assert auth_client.post("/api/orders/", body, format="json").status_code == 429
    order_complete(order_id=placed[1], capture_id="CAP-1")
    assert auth_client.post("/api/orders/", body, format="json").status_code == 201


@pytest.mark.django_db(transaction=True)  # placements run on the pool's own connections
def test_an_expired_hold_does_not_count_against_the_cap(settings, auth_client, user, no_paypal):
    settings.ORDER_MAX_PENDING_PER_USER = 1
    mug = ProductFactory(on_hand=50)
    body = {"lines": [{"product": mug.pk, "quantity": 1}]}
    first = auth_client.post("/api/orders/", body, format="json").json()["id"]
    Order.objects.filter(pk=first).update(reserved_until="2000-01-01T00:00:00Z")  # not swept yet
    assert auth_client.post("/api/orders/", body, format="json").status_code == 201


@pytest.mark.django_db(transaction=True)
def test_racing_placements_of_one_shopper_stop_at_the_cap(settings, user):
    from orders.services import order_place

    settings.ORDER_MAX_PENDING_PER_USER = 3
    mug = ProductFactory(on_hand=50)

    def place(_):
        try:
            return order_place(user=user, lines=[{"product": mug.pk, "quantity": 1}])
        except Exception as error:
            return error
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(place, range(8)))

    assert sum(isinstance(result, Order) for result in results) == 3
    assert {getattr(result, "code", None) for result in results if not isinstance(result, Order)} == {
        "too_many_pending_orders"
    }
    assert Order.objects.filter(user=user, status="PENDING").count() == 3


def test_failed_logins_for_one_username_are_limited_without_trying_the_password(settings, django_user_model):
    settings.PAGE_THROTTLE_RATES = {**settings.PAGE_THROTTLE_RATES, "login_username": "3/15m"}
    django_user_model.objects.create_user("ivan", password="pw-ivan-12345")
    django_user_model.objects.create_user("jane", password="pw-jane-12345")
    client = Client()
    for _ in range(3):
        assert client.post("/accounts/login/", {"username": "ivan", "password": "guess"}).status_code == 200

    limited = client.post("/accounts/login/", {"username": "ivan", "password": "pw-ivan-12345"})

    assert limited.status_code == 429
    assert "Too many login attempts" in limited.content.decode()
    assert "_auth_user_id" not in client.session  # the right password was not even tried
    response = client.post("/accounts/login/", {"username": "jane", "password": "pw-jane-12345"})
    assert response.status_code == 302  # another account is not affected


def test_login_posts_per_address_and_password_resets_are_limited(settings, django_user_model):
    settings.PAGE_THROTTLE_RATES = {**settings.PAGE_THROTTLE_RATES, "login": "2/m", "password_reset": "1/h"}
    client = Client()
    statuses = [
        client.post("/accounts/login/", {"username": f"u{i}", "password": "x"}).status_code for i in range(3)
    ]
    assert statuses == [200, 200, 429]
    assert client.post("/accounts/password_reset/", {"email": "a@example.com"}).status_code == 302
    again = client.post("/accounts/password_reset/", {"email": "a@example.com"})
    assert again.status_code == 429 and "Too many requests for a new password" in again.content.decode()


def test_sign_ups_are_limited(settings):
    settings.PAGE_THROTTLE_RATES = {**settings.PAGE_THROTTLE_RATES, "signup": "1/m"}
    client = Client()
    form = {
        "username": "kim",
        "email": "kim@example.com",
        "password1": "a-strong-pass-42",
        "password2": "a-strong-pass-42",
    }
    assert client.post("/accounts/signup/", form).status_code == 302
    other = Client()
    form2 = {**form, "username": "lee", "email": "lee@example.com"}
    assert other.post("/accounts/signup/", form2).status_code == 429


def test_the_schema_documents_429_where_requests_are_limited(client):
    schema = client.get("/api/schema/?format=json").json()
    assert "429" in schema["paths"]["/api/auth/token/"]["post"]["responses"]
    assert (
        "too_many_pending_orders"
        in schema["paths"]["/api/orders/"]["post"]["responses"]["429"]["description"]
    )


def test_a_client_cannot_dodge_the_limit_with_its_own_forwarded_for_header(limits):
    client = APIClient()
    statuses = [
        client.post(
            "/api/auth/token/",
            {"username": "x", "password": "y"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"10.1.1.{i}",
        ).status_code
        for i in range(6)
    ]
    assert statuses == [400] * 5 + [429]
