"""The caught emails of ``make run`` in the browser (``/dev/mail/``), only while DEBUG is on.

The local mail sink (``shop.mailsink``) saves each message as an ``.eml`` file in ``LOCAL_MAIL_DIR``;
these pages list them newest first and show each one's text and HTML parts. The HTML part is served
on its own with a sandboxing Content-Security-Policy and shown in an iframe, so an email's markup
never runs as the shop's page.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

NAME = re.compile(r"^[0-9TZ]+-[0-9a-f]{8}\.eml$")
LISTED = 200


@dataclass(frozen=True)
class CaughtMail:
    name: str
    subject: str
    to: str
    sent: str


def _directory() -> Path:
    if not settings.DEBUG:
        raise Http404("The mail viewer exists only while DEBUG is on.")
    return Path(settings.LOCAL_MAIL_DIR)


def _read(path: Path) -> EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def _message(name: str) -> EmailMessage:
    path = _directory() / name
    if not NAME.match(name) or not path.is_file():
        raise Http404("No such email.")
    return _read(path)


def _part(message: EmailMessage, content_type: str) -> str | None:
    part = message.get_body(preferencelist=(content_type.split("/")[1],))
    return part.get_content() if part is not None and part.get_content_type() == content_type else None


@require_GET
def mail_list(request):
    directory = _directory()
    paths = sorted(directory.glob("*.eml"), reverse=True)[:LISTED] if directory.is_dir() else []
    mails = []
    for path in paths:
        message = _read(path)
        mails.append(
            CaughtMail(
                path.name,
                str(message.get("Subject", "")),
                str(message.get("To", "")),
                str(message.get("Date", "")),
            )
        )
    return render(request, "dev/mail_list.html", {"mails": mails, "directory": directory})


@require_GET
def mail_detail(request, name: str):
    message = _message(name)
    context = {
        "name": name,
        "message": message,
        "headers": [
            (key, str(message[key])) for key in ("From", "To", "Subject", "Date", "Content-Language")
        ],
        "text": _part(message, "text/plain"),
        "has_html": _part(message, "text/html") is not None,
    }
    return render(request, "dev/mail_detail.html", context)


@require_GET
def mail_html(request, name: str):
    html = _part(_message(name), "text/html")
    if html is None:
        raise Http404("This email has no HTML part.")
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    )
    response["X-Frame-Options"] = "SAMEORIGIN"
    return response
