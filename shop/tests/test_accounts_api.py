import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


def test_register_then_get_a_token_then_call_the_api(api_client):
    response = api_client.post(
        "/api/auth/register/",
        {"username": "carol", "email": "carol@example.com", "password": "a-strong-pass-42"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["username"] == "carol"
    assert "password" not in response.json()

    response = api_client.post(
        "/api/auth/token/", {"username": "carol", "password": "a-strong-pass-42"}, format="json"
    )
    assert response.status_code == 200
    token = response.json()["token"]
    assert Token.objects.get(key=token).user.username == "carol"

    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api_client.get("/api/orders/").status_code == 200


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"username", "email", "password"}),
        ({"username": "dave", "email": "not-an-email", "password": "a-strong-pass-42"}, {"email"}),
        ({"username": "dave", "email": "d@example.com", "password": "123"}, {"password"}),
        ({"username": "bad name!", "email": "d@example.com", "password": "a-strong-pass-42"}, {"username"}),
        ({"username": "alice", "email": "d@example.com", "password": "a-strong-pass-42"}, {"username"}),
    ],
)
def test_register_rejects_bad_input_per_field(api_client, user, payload, fields):
    count = get_user_model().objects.count()
    response = api_client.post("/api/auth/register/", payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["errors"]) == fields
    for field in fields:
        assert all(isinstance(message, str) and message for message in body["errors"][field])
    assert get_user_model().objects.count() == count


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": "alice"}, "password"),
        ({"password": "pw-alice-1"}, "username"),
        ({"username": "alice", "password": "wrong"}, "non_field_errors"),
    ],
)
def test_token_rejects_bad_input(api_client, user, payload, field):
    response = api_client.post("/api/auth/token/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_register_rejects_malformed_json(api_client):
    response = api_client.post("/api/auth/register/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
