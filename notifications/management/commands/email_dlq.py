from django.core.management.base import BaseCommand, CommandError

from notifications import kafka_client
from notifications.dlq import dlq_list, dlq_replay


class Command(BaseCommand):
    help = (
        "Inspect and replay the email consumer's dead-letter topic. `list` shows every dead letter and why "
        "it failed; `replay --event-id ID` (repeatable) or `replay --all` publishes the original messages "
        "again to the email topic (the consumer still sends each email once)."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["list", "replay"])
        parser.add_argument(
            "--event-id", action="append", default=[], dest="event_ids", help="replay this event"
        )
        parser.add_argument("--all", action="store_true", help="replay every dead letter")
        parser.add_argument(
            "--idle", type=float, default=1.0, help="stop reading the topic after this many quiet seconds"
        )

    def handle(self, *args, action, event_ids, all=False, idle=1.0, **options):
        if not kafka_client.is_configured():
            raise CommandError("KAFKA_BOOTSTRAP_SERVERS is not set: there is no Kafka to read from.")
        if action == "list":
            if event_ids or all:
                raise CommandError("--event-id and --all are options of `replay`.")
            return self._list(idle)
        if bool(event_ids) == all:
            raise CommandError("Say which messages to replay: --event-id ID (repeatable) or --all.")
        result = dlq_replay(event_ids=None if all else set(event_ids), idle=idle)
        for letter in result.replayed:
            self.stdout.write(
                f"replayed {letter.event_id or '(no event id)'} order={letter.order_id or '-'} "
                f"from dlq partition {letter.partition} offset {letter.offset}"
            )
        for event_id in result.not_found:
            self.stderr.write(self.style.WARNING(f"not in the dead-letter topic: {event_id}"))
        self.stdout.write(
            f"{len(result.replayed)} replayed ({len(result.reopened)} given-up deliveries reopened)"
        )
        if result.not_found and not result.replayed:
            raise CommandError("nothing replayed", returncode=1)

    def _list(self, idle):
        letters = dlq_list(idle=idle)
        for letter in letters:
            self.stdout.write(
                f"partition={letter.partition} offset={letter.offset} key={letter.key or '-'} "
                f"event={letter.event_id or '-'} order={letter.order_id or '-'} "
                f"failed_at={letter.failed_at or '-'}\n"
                f"    error={letter.error_code}: {letter.error_message}"
            )
        self.stdout.write(f"{len(letters)} dead letters")
