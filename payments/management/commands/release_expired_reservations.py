from django.core.management.base import BaseCommand

from payments.expiry import payment_expire_overdue


class Command(BaseCommand):
    help = "Release expired stock holds once: the work of the beat task, for cron users and tests."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=None, help="orders per transaction")

    def handle(self, *args, batch_size=None, **options):
        sweep = payment_expire_overdue(batch_size=batch_size)
        self.stdout.write(
            f"released {len(sweep.released)} expired orders; "
            f"settled {len(sweep.settled_with_provider)} with PayPal; "
            f"checked {len(sweep.reconciled)} failed orders with PayPal again; {sweep.batches} batches"
        )
