"""Run the local PayPal simulator (Orders v2 subset) until Ctrl-C or SIGTERM."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand
from django.urls import reverse

from payments.simulator import PayPalSimulator


class Command(BaseCommand):
    help = "Run the local PayPal simulator: PayPal's Orders v2 subset, an approve page and a control API."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument(
            "--port",
            type=int,
            default=None,
            help="Port to listen on (default: the PAYPAL_SIMULATOR_PORT setting).",
        )
        parser.add_argument(
            "--public-url",
            default=None,
            help="Base URL of the approve links it hands out, as the payer's browser reaches it "
            "(default: the PAYPAL_SIMULATOR_PUBLIC_URL setting, else http://<host>:<port>).",
        )
        parser.add_argument(
            "--webhook-url",
            default=None,
            help="Where to send webhook events by itself, as PayPal does "
            "(default: the shop's webhook under SITE_URL).",
        )
        parser.add_argument(
            "--no-webhooks",
            action="store_true",
            help="Send no webhook events unless asked through the control API.",
        )

    def handle(self, *args, **options):
        port = options["port"] if options["port"] is not None else settings.PAYPAL_SIMULATOR_PORT
        webhook_url = None
        if not options["no_webhooks"]:
            webhook_url = (
                options["webhook_url"] or f"{settings.SITE_URL.rstrip('/')}{reverse('paypal-webhook')}"
            )
        simulator = PayPalSimulator(
            host=options["host"],
            port=port,
            client_id=settings.PAYPAL_CLIENT_ID or None,
            client_secret=settings.PAYPAL_CLIENT_SECRET or None,
            webhook_id=settings.PAYPAL_WEBHOOK_ID or "simulator-webhook",
            webhook_secret=f"{settings.SECRET_KEY}:paypal-simulator",
            webhook_url=webhook_url,
            public_url=options["public_url"] or settings.PAYPAL_SIMULATOR_PUBLIC_URL or None,
        )
        stop = threading.Event()

        def request_stop(signum, frame):
            stop.set()

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        simulator.start()
        self.stdout.write(f"PayPal simulator listening on {simulator.url}/", ending="\n")
        self.stdout.write(f"  approve pages: {simulator.public_url}/checkoutnow?token=<order id>")
        self.stdout.write(f"  webhooks to:   {webhook_url or '(none; use the control API)'}")
        self.stdout.flush()
        try:
            while not stop.wait(0.5):
                pass
        finally:
            simulator.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stdout.write("PayPal simulator stopped.")
