"""Password reset (Django's own views) through a real SMTP server, in English and Vietnamese; the
email leaves through a Celery task (eager in the tests), never in the request itself."""

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

TEXT = {
    "en": {"subject": "Choose a new password for your shop account", "done": "Check your email"},
    "vi": {"subject": "Chọn mật khẩu mới cho tài khoản cửa hàng của bạn", "done": "Hãy kiểm tra email"},
}


def link_in(message) -> str:
    body = next(part.get_content() for part in message.walk() if part.get_content_type() == "text/plain")
    return re.search(r"http://testserver(/accounts/reset/\S+/)", body).group(1)


@pytest.mark.parametrize("language", ["en", "vi"])
def test_a_shopper_resets_the_password_once_through_the_emailed_link(
    smtp_settings, smtp_server, django_user_model, language
):
    django_user_model.objects.create_user("dana", "dana@example.com", "old-pass-123")
    client = Client()
    client.cookies["django_language"] = language
    assert 'href="/accounts/password_reset/"' in client.get("/accounts/login/").content.decode()

    response = client.post("/accounts/password_reset/", {"email": "dana@example.com"}, follow=True)
    assert TEXT[language]["done"] in response.content.decode()
    (message,) = smtp_server.wait_for(1)
    assert message["To"] == "dana@example.com"
    assert str(message["Subject"]).strip() == TEXT[language]["subject"]
    link = link_in(message)

    form = client.get(link, follow=True)
    assert form.status_code == 200 and 'name="new_password1"' in form.content.decode()
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "brand-new-pass-7", "new_password2": "brand-new-pass-7"},
        follow=True,
    )
    assert done.redirect_chain[-1][0] == "/accounts/reset/done/"
    assert Client().login(username="dana", password="brand-new-pass-7")
    assert not Client().login(username="dana", password="old-pass-123")

    again = Client().get(link, follow=True).content.decode()  # the link works once
    assert 'name="new_password1"' not in again and 'href="/accounts/password_reset/"' in again


def test_the_request_does_not_send_the_email_itself(monkeypatch, django_user_model):
    queued = []
    monkeypatch.setattr("shop.forms.send_account_email.delay", lambda **kwargs: queued.append(kwargs))
    django_user_model.objects.create_user("erin", "erin@example.com", "old-pass-123")

    response = Client().post("/accounts/password_reset/", {"email": "erin@example.com"})

    assert response.status_code == 302
    (job,) = queued
    assert job["to"] == "erin@example.com" and "/accounts/reset/" in job["body"] and job["html"]


def test_an_unknown_address_looks_the_same_and_sends_nothing(smtp_settings, smtp_server):
    response = Client().post("/accounts/password_reset/", {"email": "nobody@example.com"})
    assert response.status_code == 302 and response["Location"] == "/accounts/password_reset/done/"
    assert smtp_server.messages == []


def test_a_logged_in_shopper_changes_the_password(django_user_model):
    user = django_user_model.objects.create_user("fay", "fay@example.com", "old-pass-123")
    client = Client()
    client.force_login(user)
    assert 'href="/accounts/password_change/"' in client.get("/").content.decode()
    wrong = client.post(
        "/accounts/password_change/",
        {"old_password": "nope", "new_password1": "brand-new-pass-7", "new_password2": "brand-new-pass-7"},
    )
    assert wrong.status_code == 200 and "errorlist" in wrong.content.decode()
    response = client.post(
        "/accounts/password_change/",
        {
            "old_password": "old-pass-123",
            "new_password1": "brand-new-pass-7",
            "new_password2": "brand-new-pass-7",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/password_change/done/"
    assert Client().login(username="fay", password="brand-new-pass-7")
