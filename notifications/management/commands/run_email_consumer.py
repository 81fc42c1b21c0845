import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from notifications import kafka_client
from notifications.consumer import EmailConsumer
from shop.heartbeat import Heartbeat

logger = logging.getLogger("notifications.consumer")


class Command(BaseCommand):
    help = (
        "Read order outcome events from Kafka and email each shopper once. SIGTERM or Ctrl-C finishes "
        "the current message, commits it and exits 0."
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

    def handle(self, *args, group=None, max_messages=None, idle_timeout=None, **options):
        if not kafka_client.is_configured():
            raise CommandError("KAFKA_BOOTSTRAP_SERVERS is not set: there is no Kafka to read from.")
        if max_messages is not None and max_messages < 1:
            raise CommandError("--max-messages must be at least 1.")
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
        try:
            stats = consumer.run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self.stdout.write(
            f"handled {stats.handled} messages: {stats.sent} sent, {stats.duplicates} duplicates, "
            f"{stats.skipped} skipped, {stats.dead_lettered} dead-lettered; {stats.retries} retries"
        )
