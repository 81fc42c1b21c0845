import pytest
from django.db import IntegrityError, transaction

from inventory.models import Stock
from inventory.tests.factories import ProductFactory


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("on_hand", "reserved", "constraint"),
    [
        (5, 6, "stock_reserved_within_on_hand"),
        (-1, 0, "stock_on_hand_(not_negative|check)"),
        (5, -1, "stock_reserved_(not_negative|check)"),
    ],
)
def test_database_rejects_stock_outside_bounds(on_hand, reserved, constraint):
    product = ProductFactory(on_hand=5)
    # A raw UPDATE skips every Python-side validation: only the database can refuse it.
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        Stock.objects.filter(pk=product.pk).update(on_hand=on_hand, reserved=reserved)
    stock = Stock.objects.get(pk=product.pk)
    assert (stock.on_hand, stock.reserved) == (5, 0)


@pytest.mark.django_db
def test_database_accepts_reserved_equal_to_on_hand():
    product = ProductFactory(on_hand=5)
    Stock.objects.filter(pk=product.pk).update(reserved=5)
    assert Stock.objects.get(pk=product.pk).available == 0
