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
    ("payload", "code", "fields"),
    [
        ({}, "invalid", {"username", "email", "password"}),
        ({"username": "dave", "email": "not-an-email", "password": "a-strong-pass-42"}, "invalid", {"email"}),
        ({"username": "dave", "email": "d@example.com", "password": "123"}, "invalid", {"password"}),
        (
            {"username": "bad name!", "email": "d@example.com", "password": "a-strong-pass-42"},
            "invalid",
            {"username"},
        ),
        (
            {"username": "dave", "email": "d@example.com", "password": "a-strong-pass-42", "admin": True},
            "invalid",
            {"admin"},
        ),
        # The shape is right; the stored users or the password policy refuse it.
        (
            {"username": "ALICE", "email": "d@example.com", "password": "a-strong-pass-42"},
            "username_taken",
            {"username"},
        ),
        (
            {"username": "dave", "email": "d@example.com", "password": "password1"},
            "password_rejected",
            {"password"},
        ),
        (
            {"username": "dave", "email": "d@example.com", "password": "8462519730"},
            "password_rejected",
            {"password"},
        ),
    ],
)
def test_register_rejects_bad_input_per_field(api_client, user, payload, code, fields):
    count = get_user_model().objects.count()
    response = api_client.post("/api/auth/register/", payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], set(body["errors"])) == (code, fields)
    assert body["message"]
    for field in fields:
        assert all(isinstance(message, str) and message for message in body["errors"][field])
    assert get_user_model().objects.count() == count


def test_register_of_a_username_taken_meanwhile_is_400(user, monkeypatch):
    """The look-up saw no "alice", but the insert meets hers: the unique index answers, not a 500."""
    from core.errors import UsernameTaken
    from shop.services import user_register

    monkeypatch.setattr("django.db.models.query.QuerySet.exists", lambda self: False)
    with pytest.raises(UsernameTaken):
        user_register(username="alice", email="a2@example.com", password="a-strong-pass-42")
    assert get_user_model().objects.filter(username="alice").count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": "alice"}, "password"),
        ({"password": "pw-alice-1"}, "username"),
        ({"username": "alice", "password": "pw-alice-1", "remember": True}, "remember"),
    ],
)
def test_token_rejects_bad_input(api_client, user, payload, field):
    response = api_client.post("/api/auth/token/", payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["errors"]
    assert not Token.objects.exists()


@pytest.mark.parametrize(
    "payload", [{"username": "alice", "password": "wrong"}, {"username": "x", "password": "y"}]
)
def test_token_refuses_wrong_credentials(api_client, user, payload):
    response = api_client.post("/api/auth/token/", payload, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_credentials",
        "message": "Unable to log in with the given username and password.",
    }
    assert not Token.objects.exists()


def test_register_rejects_malformed_json(api_client):
    response = api_client.post("/api/auth/register/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
