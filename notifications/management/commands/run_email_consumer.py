import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.heartbeat import Heartbeat
from core.metrics import metrics_serve
from notifications import kafka_client
from notifications.consumer import EmailConsumer
from notifications.consumer_metrics import CONSUMER_REGISTRY

logger = logging.getLogger("notifications.consumer")


def _metrics_serve(*, port: int, host: str):
    try:
        server = metrics_serve(registry=CONSUMER_REGISTRY, port=port, host=host)
    except OSError as error:
        raise CommandError(f"Cannot serve metrics on {host}:{port}: {error}") from error
    logger.info("email consumer metrics on http://%s:%d/metrics", host, port)
    return server


class Command(BaseCommand):
    help = (
        "Read order outcome events from Kafka and email each shopper once. SIGTERM or Ctrl-C finishes "
        "the current message, commits what was handled and exits 0."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--group",
            default=None,
            help="consumer group id (default: KAFKA_EMAIL_CONSUMER_GROUP, 'email-sender')",
        )
        parser.add_argument(
            "--max-messages", type=int, default=None, help="stop after handling this many messages"
        )
        parser.add_argument(
            "--idle-timeout",
            type=float,
            default=None,
            help="stop after this many seconds without a message (and none waiting to be retried)",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="serve the consumer's Prometheus metrics on this port (default: none)",
        )
        parser.add_argument(
            "--metrics-host",
            default="127.0.0.1",
            help="address the metrics port listens on (default 127.0.0.1; 0.0.0.0 in a container whose "
            "network only Prometheus reaches)",
        )

    def handle(
        self,
        *args,
        group=None,
        max_messages=None,
        idle_timeout=None,
        metrics_port=None,
        metrics_host="127.0.0.1",
        **options,
    ):
        if not kafka_client.is_configured():
            raise CommandError("KAFKA_BOOTSTRAP_SERVERS is not set: there is no Kafka to read from.")
        if max_messages is not None and max_messages < 1:
            raise CommandError("--max-messages must be at least 1.")
        if metrics_port is not None and not 0 < metrics_port < 65536:
            raise CommandError("--metrics-port must be a port number, 1 to 65535.")
        consumer = EmailConsumer(
            group_id=group or settings.KAFKA_EMAIL_CONSUMER_GROUP,
            max_messages=max_messages,
            idle_timeout=idle_timeout,
            heartbeat=Heartbeat("email-consumer", directory=settings.HEARTBEAT_DIR),
        )
        previous = {}
        if threading.current_thread() is threading.main_thread():

            def request_stop(signum, frame):
                if consumer.stop_event.is_set():
                    raise KeyboardInterrupt  # a second Ctrl-C: stop now, without finishing the message
                consumer.stop()
                logger.info("stop requested (%s): finishing the current message", signal.Signals(signum).name)

            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, request_stop)
        metrics_server = _metrics_serve(port=metrics_port, host=metrics_host) if metrics_port else None
        try:
            stats = consumer.run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
        self.stdout.write(
            f"handled {stats.handled} messages: {stats.sent} sent, {stats.duplicates} duplicates, "
            f"{stats.skipped} skipped, {stats.dead_lettered} dead-lettered; {stats.retries} retries"
        )
