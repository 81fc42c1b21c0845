import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from inventory.models import Product, Stock


def snapshot():
    products = list(
        Product.objects.order_by("sku").values_list("sku", "name", "slug", "price", "currency", "is_active")
    )
    stock = list(Stock.objects.order_by("product__sku").values_list("product__sku", "on_hand", "reserved"))
    users = list(
        get_user_model()
        .objects.order_by("username")
        .values_list("username", "email", "is_staff", "is_superuser")
    )
    return products, stock, users


@pytest.mark.django_db
def test_seed_demo_twice_gives_the_same_data(capsys):
    call_command("seed_demo")
    first = snapshot()
    call_command("seed_demo")
    assert snapshot() == first

    products, stock, users = first
    assert len(products) >= 12
    assert any(on_hand <= 3 for _, on_hand, _ in stock), "some demo products have low stock"
    assert ("staff", "staff@example.com", True, True) in users
    out = capsys.readouterr().out
    assert "staff-pass-123" in out and "shopper-pass-123" in out


@pytest.mark.django_db
def test_seed_demo_restores_changed_products_and_passwords(client):
    call_command("seed_demo")
    Product.objects.filter(sku="TEE-001").update(name="changed", is_active=False)
    Stock.objects.filter(product__sku="TEE-001").update(on_hand=0)
    call_command("seed_demo")
    product = Product.objects.get(sku="TEE-001")
    assert (product.name, product.is_active, product.stock.on_hand) == ("Organic cotton T-shirt", True, 40)
    assert client.login(username="staff", password="staff-pass-123")
    assert client.get("/admin/").status_code == 200
