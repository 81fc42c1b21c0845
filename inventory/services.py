from decimal import Decimal

from django.db import transaction

from inventory.models import Product, Stock


@transaction.atomic
def product_upsert(
    *, sku: str, name: str, slug: str, price: Decimal, currency: str, on_hand: int, description: str = ""
) -> tuple[Product, bool]:
    """Create the product with its stock, or bring an existing one (by sku) back to these values.

    Returns the product and whether it was created. Stock that is held for pending orders is kept:
    on_hand never drops below what is reserved.
    """
    product, created = Product.objects.update_or_create(
        sku=sku,
        defaults={
            "name": name,
            "slug": slug,
            "price": price,
            "currency": currency,
            "description": description,
            "is_active": True,
        },
    )
    stock, _ = Stock.objects.select_for_update().get_or_create(product=product)
    stock.on_hand = max(on_hand, stock.reserved)
    stock.save(update_fields=["on_hand", "updated_at"])
    return product, created
