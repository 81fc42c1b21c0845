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
    call_command("seed_demo", allow_demo_users=True)
    first = snapshot()
    call_command("seed_demo", allow_demo_users=True)
    assert snapshot() == first

    products, stock, users = first
    assert len(products) >= 12
    assert any(on_hand <= 3 for _, on_hand, _ in stock), "some demo products have low stock"
    assert ("staff", "staff@example.com", True, True) in users
    out = capsys.readouterr().out
    assert "staff-pass-123" in out and "shopper-pass-123" in out


@pytest.mark.django_db
def test_seed_demo_restores_changed_products_and_passwords(client):
    call_command("seed_demo", "--allow-demo-users")
    Product.objects.filter(sku="TEE-001").update(name="changed", is_active=False)
    Stock.objects.filter(product__sku="TEE-001").update(on_hand=0)
    call_command("seed_demo", "--allow-demo-users")
    product = Product.objects.get(sku="TEE-001")
    assert (product.name, product.is_active, product.stock.on_hand) == ("Organic cotton T-shirt", True, 40)
    assert client.login(username="staff", password="staff-pass-123")
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_outside_debug_seed_demo_loads_the_products_but_no_user_with_a_known_password(settings, capsys):
    settings.DEBUG = False
    call_command("seed_demo")
    products, stock, users = snapshot()
    assert len(products) >= 12 and len(stock) == len(products)
    assert users == []
    captured = capsys.readouterr()
    assert "staff-pass-123" not in captured.out + captured.err
    assert "--allow-demo-users" in captured.err and "createsuperuser" in captured.err


@pytest.mark.django_db
def test_with_debug_on_seed_demo_creates_the_demo_users(settings):
    settings.DEBUG = True
    call_command("seed_demo")
    assert [user[0] for user in snapshot()[2]] == ["shopper", "staff"]
