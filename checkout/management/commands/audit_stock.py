from django.core.management.base import BaseCommand, CommandError

from checkout.audit import stock_audit_record, stock_audit_run


class Command(BaseCommand):
    help = (
        "Check every stock and order invariant of the shop; print each drift with the ids involved and "
        "exit 1 when there is one. Reports only: nothing is repaired."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-record", action="store_true", help="do not keep this run's result for the admin"
        )

    def handle(self, *args, no_record=False, **options):
        drifts = stock_audit_run()
        if not no_record:
            stock_audit_record(drifts=drifts)
        for drift in drifts:
            self.stderr.write(self.style.ERROR(str(drift)))
        if drifts:
            raise CommandError(f"{len(drifts)} kinds of drift found", returncode=1)
        self.stdout.write(self.style.SUCCESS("audit_stock: every invariant holds"))
