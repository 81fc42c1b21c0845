"""A local SMTP sink for ``make run``: every message is saved as an ``.eml`` file, nothing is delivered.

    python -m shop.mailsink --port 1025 --dir var/mail

The server is bound to 127.0.0.1 explicitly (aiosmtpd's default host resolves to ``::1`` on some
machines, which the shop's ``EMAIL_URL=smtp://127.0.0.1:1025`` would not reach). Each message is
written to a temporary name and renamed, so a reader never sees half a file. The envelope (which can
differ from the To/Cc headers, e.g. for Bcc) is kept in ``X-Envelope-From`` / ``X-Envelope-To``
headers added at the top of the file.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import logging
import os
import signal
import sys
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

from aiosmtpd.controller import Controller

logger = logging.getLogger("shop.mailsink")


class SaveToDirectory:
    """aiosmtpd handler: store each message under ``directory`` and log a one-line summary."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook name
        path = self.save(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        return f"250 Message accepted, saved as {path.name}"

    def save(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        newline = b"\r\n" if b"\r\n" in content else b"\n"
        envelope_headers = newline.join(
            [
                b"X-Envelope-From: " + mail_from.encode(),
                b"X-Envelope-To: " + ", ".join(rcpt_tos).encode(),
                b"",
            ]
        )
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        partial = path.with_suffix(".eml.part")
        partial.write_bytes(envelope_headers + content)
        os.replace(partial, path)

        subject = email.message_from_bytes(content, policy=email.policy.default).get("Subject", "")
        logger.info(
            "mail from=%s to=%s subject=%r size=%dB saved=%s",
            mail_from,
            ",".join(rcpt_tos),
            str(subject),
            len(content),
            path,
        )
        return path


class MailSink:
    """The SMTP server in a background thread (aiosmtpd's Controller)."""

    def __init__(self, directory: Path, *, host: str = "127.0.0.1", port: int = 1025):
        self.directory = Path(directory)
        self.host = host
        self.port = port
        self._controller: Controller | None = None

    def start(self) -> MailSink:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(
            SaveToDirectory(self.directory), hostname=self.host, port=self.port, ready_timeout=10.0
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local SMTP sink: saves every message as an .eml file.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path("var/mail"), help="where the .eml files go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-connection chatter

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    sink = MailSink(args.dir, host=args.host, port=args.port).start()
    print(f"Mail sink listening on {args.host}:{args.port}, saving messages to {args.dir}/", flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
