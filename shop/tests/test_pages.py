import pytest
from django.contrib.auth import get_user_model

from inventory.tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def test_catalog_lists_active_products_with_availability(client):
    ProductFactory(name="Blue mug", on_hand=4)
    ProductFactory(name="Hidden", is_active=False)
    page = client.get("/").content.decode()
    assert "Blue mug" in page and "4 available" in page
    assert "Hidden" not in page


def test_signup_logs_the_shopper_in(client):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "erin",
            "email": "erin@example.com",
            "password1": "a-strong-pass-42",
            "password2": "a-strong-pass-42",
        },
    )
    assert response.status_code == 302
    assert get_user_model().objects.filter(username="erin", email="erin@example.com").exists()
    assert "erin" in client.get("/").content.decode()


def test_signup_shows_form_errors(client):
    response = client.post(
        "/accounts/signup/", {"username": "erin", "email": "bad", "password1": "x", "password2": "y"}
    )
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert not get_user_model().objects.filter(username="erin").exists()


def test_login_and_logout(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice-1"})
    assert response.status_code == 302
    assert "alice" in client.get("/").content.decode()
    client.post("/accounts/logout/")
    assert "Signed in as alice" not in client.get("/").content.decode()
