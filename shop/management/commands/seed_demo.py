from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from inventory.services import product_upsert
from shop.demo import DEMO_PRODUCTS, DEMO_SHOPPER, DEMO_STAFF


class Command(BaseCommand):
    help = (
        "Create (or bring back) the demo catalog, a demo shopper and a staff user. Safe to run again. "
        "Outside DEBUG the users, whose passwords are published, only with --allow-demo-users."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-demo-users",
            action="store_true",
            help="Create the demo users with their well-known passwords even though DEBUG is off.",
        )

    def handle(self, *args, allow_demo_users=False, **options):
        from django.utils.text import slugify

        with_users = settings.DEBUG or allow_demo_users

        with transaction.atomic():
            for index, (sku, name, price, on_hand) in enumerate(DEMO_PRODUCTS, start=1):
                product, created = product_upsert(
                    sku=sku,
                    name=name,
                    slug=slugify(name),
                    price=Decimal(price),
                    currency=settings.SHOP_CURRENCY,
                    on_hand=on_hand,
                    description=f"{name}: a demo product of the shop.",
                )
                verb = "created" if created else "updated"
                self.stdout.write(f"[{index:2}/{len(DEMO_PRODUCTS)}] {verb} {product.sku} {product.name}")
            if with_users:
                shopper = self._user(*DEMO_SHOPPER, staff=False)
                staff = self._user(*DEMO_STAFF, staff=True)

        if not with_users:
            self.stdout.write(self.style.SUCCESS("Demo products ready."))
            self.stderr.write(
                self.style.WARNING(
                    f"Demo users not created: DEBUG is off and their passwords are public. Create a staff "
                    f"user with `manage.py createsuperuser`, or run seed_demo --allow-demo-users for a demo "
                    f"({DEMO_STAFF[0]} / {DEMO_SHOPPER[0]})."
                )
            )
            return
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"  shopper: {shopper.username} / {DEMO_SHOPPER[2]}")
        self.stdout.write(f"  staff:   {staff.username} / {DEMO_STAFF[2]}  (Django admin at /admin/)")

    def _user(self, username, email, password, *, staff):
        user, _ = get_user_model().objects.get_or_create(username=username, defaults={"email": email})
        user.email = email
        user.is_staff = staff
        user.is_superuser = staff
        user.set_password(password)
        user.save()
        return user
