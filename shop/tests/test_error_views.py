"""Error answers outside the API views: JSON under /api/ and on the PayPal webhook, HTML for pages."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_no_raise():
    return Client(raise_request_exception=False)


def test_a_crash_in_an_api_view_answers_json_500(client_no_raise, user, monkeypatch):
    def crash(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("checkout.api.views.order_list_for_user", crash)
    client_no_raise.force_login(user)
    response = client_no_raise.get("/api/orders/")
    assert (response.status_code, response["Content-Type"]) == (500, "application/json")
    assert response.json()["code"] == "server_error" and "boom" not in response.json()["message"]


def test_a_crash_on_a_page_keeps_the_html_500(client_no_raise, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("shop.views.product_list_active", crash)
    response = client_no_raise.get("/")
    assert response.status_code == 500 and response["Content-Type"].startswith("text/html")


def test_bodies_over_the_limit_are_413_json(client, user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '{"x": "' + "a" * 2000 + '"}'
    client.force_login(user)
    for path in ("/api/orders/", "/api/auth/token/", "/payments/paypal/webhook/"):
        response = client.post(path, body, content_type="application/json")
        assert (response.status_code, response["Content-Type"]) == (413, "application/json"), path
        assert response.json() == {"code": "request_too_large", "message": "The request body is too large."}


def test_pages_keep_html_for_a_body_over_the_limit(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client.post("/accounts/signup/", {"username": "x" * 2000})
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")


def test_a_session_post_without_csrf_token_is_the_documented_403(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/api/orders/", {"lines": []}, content_type="application/json")
    assert (response.status_code, response["Content-Type"]) == (403, "application/json")
    assert response.json()["code"] == "permission_denied"
    schema = client.get("/api/schema/?format=json").json()
    assert "403" in schema["paths"]["/api/orders/"]["post"]["responses"]
    assert "403" not in schema["paths"]["/api/orders/"]["get"]["responses"]
