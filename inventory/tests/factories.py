from decimal import Decimal

import factory

from inventory.models import Product
from inventory.services import product_create


class ProductFactory(factory.django.DjangoModelFactory):
    """A product created the way the shop creates every product: through ``product_create``, with
    its stock row and its opening balance in the ledger (``on_hand`` units, 10 unless given)."""

    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    slug = factory.Sequence(lambda n: f"product-{n}")
    price = Decimal("10.00")
    currency = "USD"
    is_active = True
    on_hand = 10

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        kwargs["price"] = Decimal(str(kwargs["price"]))
        return product_create(**kwargs)
