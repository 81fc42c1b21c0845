from django.core.management.base import BaseCommand

from orders.services import order_expire_overdue


class Command(BaseCommand):
    help = "Release expired stock holds once: the work of the beat task, for cron users and tests."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=None, help="orders per transaction")

    def handle(self, *args, batch_size=None, **options):
        sweep = order_expire_overdue(batch_size=batch_size)
        self.stdout.write(
            f"released {len(sweep.released)} expired orders; "
            f"reconciled {len(sweep.settled_with_provider)} with PayPal; {sweep.batches} batches"
        )
