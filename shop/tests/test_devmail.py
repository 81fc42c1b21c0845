"""make run's caught emails in the browser: the shop's own email, sent over SMTP to the local mail
sink, listed newest first and shown with its text and (sandboxed) HTML parts; 404 without DEBUG."""

import re

import pytest
from django.core.mail import EmailMultiAlternatives
from django.test import Client

from shop.localrun import free_port
from shop.mailsink import MailSink
from tests.test_mailsink import wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def sink(tmp_path, settings):
    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.LOCAL_MAIL_DIR = tmp_path
    settings.DEBUG = True
    with MailSink(tmp_path, port=port):
        yield tmp_path


def send(subject: str, html: str):
    message = EmailMultiAlternatives(subject, f"{subject}: the text part.", to=["ann@example.com"])
    message.attach_alternative(html, "text/html")
    message.send()


def test_the_caught_emails_are_listed_newest_first_with_both_parts(sink):
    send("Order #1 is confirmed", "<p>First</p>")
    wait_until(lambda: len(list(sink.glob("*.eml"))) == 1, 10, "first email not saved")
    send("Order #2 could not be completed", "<p>Second <script>alert(1)</script></p>")
    wait_until(lambda: len(list(sink.glob("*.eml"))) == 2, 10, "second email not saved")
    client = Client()

    listing = client.get("/dev/mail/").content.decode()
    assert listing.index("Order #2 could not be completed") < listing.index("Order #1 is confirmed")
    newest = re.findall(r'href="/dev/mail/([^"/]+)/"', listing)[0]

    detail = client.get(f"/dev/mail/{newest}/").content.decode()
    assert "Order #2 could not be completed: the text part." in detail
    assert f'src="/dev/mail/{newest}/html/"' in detail and "sandbox" in detail
    html = client.get(f"/dev/mail/{newest}/html/")
    assert "<p>Second" in html.content.decode()
    assert html["Content-Security-Policy"].startswith("sandbox")


def test_the_mail_pages_do_not_exist_without_debug(sink, settings):
    send("Order #3", "<p>Third</p>")
    name = wait_until(lambda: list(sink.glob("*.eml")), 10, "email not saved")[0].name
    settings.DEBUG = False
    client = Client()
    for url in ("/dev/mail/", f"/dev/mail/{name}/", f"/dev/mail/{name}/html/"):
        assert client.get(url).status_code == 404, url


def test_only_caught_email_files_can_be_opened(sink):
    client = Client()
    for name in ("..%2F..%2Fetc%2Fpasswd", "settings.py", "20260101T000000Z-zzzzzzzz.eml"):
        assert client.get(f"/dev/mail/{name}/").status_code == 404, name
