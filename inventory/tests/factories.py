from decimal import Decimal

import factory

from inventory.models import Product, Stock


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        skip_postgeneration_save = True

    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    slug = factory.Sequence(lambda n: f"product-{n}")
    price = Decimal("10.00")
    currency = "USD"
    is_active = True

    @factory.post_generation
    def on_hand(product, create, extracted, **kwargs):
        if create:
            Stock.objects.create(product=product, on_hand=10 if extracted is None else extracted)
