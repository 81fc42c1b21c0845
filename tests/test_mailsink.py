"""The local mail sink (shop/mailsink.py): every message lands as an .eml file."""

from __future__ import annotations

import email
import email.policy
import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

from shop.localrun import free_port, port_in_use
from shop.mailsink import MailSink

ROOT = Path(__file__).resolve().parent.parent


def wait_until(condition, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)
    return result


def send(port: int, *, subject: str, to: str, bcc: str | None = None):
    message = EmailMessage()
    message["From"] = "Shop <orders@shop.local>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Your order is being processed.\nCảm ơn bạn!")
    recipients = [to] + ([bcc] if bcc else [])
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(message, to_addrs=recipients)


def test_a_message_is_saved_as_an_eml_file(tmp_path):
    port = free_port()
    with MailSink(tmp_path / "mail", port=port):
        send(port, subject="Order #7 confirmed", to="alice@example.com", bcc="audit@example.com")
        files = wait_until(lambda: list((tmp_path / "mail").glob("*.eml")), 10, "no .eml file")

    assert len(files) == 1
    saved = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert saved["Subject"] == "Order #7 confirmed"
    assert saved["To"] == "alice@example.com"
    assert saved["X-Envelope-From"] == "orders@shop.local"
    assert saved["X-Envelope-To"] == "alice@example.com, audit@example.com"
    assert "Cảm ơn bạn!" in saved.get_content()
    assert not list((tmp_path / "mail").glob("*.part")), "no half-written file is left"


def test_the_command_line_sink_listens_on_loopback_logs_and_stops_on_sigterm(tmp_path):
    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, "-m", "shop.mailsink", "--port", str(port), "--dir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert "Mail sink listening on 127.0.0.1:" in sink.stdout.readline()
        send(port, subject="Payment failed", to="bob@example.com")
        wait_until(lambda: list(tmp_path.glob("*.eml")), 10, "no .eml file")
        sink.send_signal(signal.SIGTERM)
        assert sink.wait(timeout=15) == 0
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    output = sink.stdout.read()
    assert "mail from=orders@shop.local to=bob@example.com subject='Payment failed'" in output
    assert not port_in_use(port)
