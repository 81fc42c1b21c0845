"""Staff edit the catalog and move stock through services only; no admin form writes a counter."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from inventory.models import Product, Stock, StockMovement
from inventory.tests.factories import ProductFactory
from orders.services import order_complete, order_place

pytestmark = pytest.mark.django_db

PRODUCTS = "/admin/inventory/product/"


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser(
        username="staff", email="staff@example.com", password="pw-staff-1"
    )


@pytest.fixture
def staff_client(staff):
    client = Client()
    client.force_login(staff)
    return client


def form_data(page: str) -> dict[str, str]:
    """The values a browser would post back from this admin form, as it was rendered."""
    data = {}
    for name, value in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page):
        data.setdefault(name, value)
    for name, body in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S):
        data[name] = body.strip()
    for name, selected in re.findall(
        r'<select[^>]*name="([^"]+)".*?<option value="([^"]*)"[^>]*selected', page, re.S
    ):
        data[name] = selected
    checked = re.findall(r'<input[^>]*type="checkbox"[^>]*name="([^"]+)"[^>]*checked', page)
    for name in re.findall(r'<input[^>]*type="checkbox"[^>]*name="([^"]+)"', page):
        if name in checked:
            data[name] = "on"
        else:
            data.pop(name, None)
    data.pop("csrfmiddlewaretoken", None)
    return data


def sell(user, product, quantity=1):
    order = order_place(user=user, lines=[{"product": product.pk, "quantity": quantity}])
    order_complete(order_id=order.pk, capture_id=f"CAP-{order.pk}")
    return order


def stock_of(product) -> Stock:
    return Stock.objects.get(pk=product.pk)


def ledger_sum(product) -> int:
    return sum(StockMovement.objects.filter(product=product).values_list("delta", flat=True))


# --- adding a product ------------------------------------------------------------------------------


def test_a_product_added_with_default_fields_is_out_of_stock_on_the_catalog(staff_client, client):
    page = staff_client.get(f"{PRODUCTS}add/").content.decode()
    data = {**form_data(page), "sku": "NEW-1", "name": "New lamp", "slug": "new-lamp", "price": "30.00"}

    response = staff_client.post(f"{PRODUCTS}add/", data)

    assert response.status_code == 302, response.content.decode()[:2000]
    product = Product.objects.get(sku="NEW-1")
    assert (stock_of(product).on_hand, stock_of(product).reserved) == (0, 0)
    assert list(StockMovement.objects.filter(product=product).values_list("reason", "delta")) == [
        ("opening_balance", 0)
    ]
    catalog = client.get("/")
    assert catalog.status_code == 200
    card = catalog.content.decode().split("New lamp", 1)[1][:800]
    assert "Out of stock" in card
    detail = client.get(product.get_absolute_url())
    assert detail.status_code == 200 and "Out of stock" in detail.content.decode()


def test_a_product_added_with_opening_stock_has_its_opening_balance(staff_client, staff):
    data = {
        **form_data(staff_client.get(f"{PRODUCTS}add/").content.decode()),
        "sku": "NEW-2",
        "name": "New mug",
        "slug": "new-mug",
        "price": "9.50",
        "opening_stock": "7",
        "low_stock_threshold": "2",
    }
    assert staff_client.post(f"{PRODUCTS}add/", data).status_code == 302
    product = Product.objects.get(sku="NEW-2")
    stock = stock_of(product)
    assert (stock.on_hand, stock.reserved, stock.low_stock_threshold) == (7, 0, 2)
    movement = StockMovement.objects.get(product=product)
    assert (movement.reason, movement.delta, movement.on_hand_after, movement.staff) == (
        "opening_balance",
        7,
        7,
        staff,
    )


def test_pages_do_not_crash_on_a_product_without_a_stock_row(client):
    product = ProductFactory(name="Orphan", on_hand=3)
    Stock.objects.filter(pk=product.pk).delete()  # as a row written before stock rows were required
    assert client.get("/").status_code == 200
    detail = client.get(product.get_absolute_url())
    assert detail.status_code == 200 and "Out of stock" in detail.content.decode()


# --- editing a product ------------------------------------------------------------------------------


def test_the_product_form_has_no_stock_counter(staff_client):
    product = ProductFactory(on_hand=10)
    page = staff_client.get(f"{PRODUCTS}{product.pk}/change/").content.decode()
    assert "10 on hand, 0 held for pending orders, 10 available" in page
    fields = form_data(page)
    assert not {name for name in fields if "on_hand" in name or "reserved" in name}
    assert f"{PRODUCTS}{product.pk}/stock/" in page  # the stock page
    assert "/admin/inventory/stockmovement/?product__id__exact=" in page  # the ledger


def test_a_price_change_from_a_form_opened_before_a_sale_keeps_the_sale(staff_client, user):
    product = ProductFactory(on_hand=10, price="10.00")
    page = staff_client.get(f"{PRODUCTS}{product.pk}/change/").content.decode()
    sell(user, product, 3)
    held = order_place(user=user, lines=[{"product": product.pk, "quantity": 2}])
    # The stale form, plus what the old stock inline used to send (a crafted POST may still send it).
    stale = {
        **form_data(page),
        "price": "12.00",
        "stock-TOTAL_FORMS": "1",
        "stock-INITIAL_FORMS": "1",
        "stock-0-product": str(product.pk),
        "stock-0-on_hand": "10",
        "stock-0-reserved": "0",
    }

    response = staff_client.post(f"{PRODUCTS}{product.pk}/change/", stale)

    assert response.status_code == 302
    product.refresh_from_db()
    assert str(product.price) == "12.00"
    stock = stock_of(product)
    assert (stock.on_hand, stock.reserved) == (7, 2)  # 3 sold stay sold, 2 stay held
    assert ledger_sum(product) == 7
    order_complete(order_id=held.pk, capture_id="CAP-HELD")  # and the held order still settles
    assert (stock_of(product).on_hand, stock_of(product).reserved) == (5, 0)


def test_the_low_stock_threshold_is_saved_without_touching_the_counters(staff_client, user):
    product = ProductFactory(on_hand=10)
    page = staff_client.get(f"{PRODUCTS}{product.pk}/change/").content.decode()
    sell(user, product, 4)
    staff_client.post(f"{PRODUCTS}{product.pk}/change/", {**form_data(page), "low_stock_threshold": "8"})
    stock = stock_of(product)
    assert (stock.on_hand, stock.reserved, stock.low_stock_threshold) == (6, 0, 8)


# --- the stock page ---------------------------------------------------------------------------------


def stock_page(staff_client, product) -> str:
    response = staff_client.get(f"{PRODUCTS}{product.pk}/stock/")
    assert response.status_code == 200
    return response.content.decode()


def post_stock(staff_client, product, page, **values):
    return staff_client.post(f"{PRODUCTS}{product.pk}/stock/", {**form_data(page), **values})


def test_receiving_and_writing_off_move_on_hand_and_write_the_ledger(staff_client, staff):
    product = ProductFactory(on_hand=10)
    response = post_stock(
        staff_client, product, stock_page(staff_client, product), operation="receive", units="5", note="PO 7"
    )
    assert response.status_code == 302
    response = post_stock(
        staff_client, product, stock_page(staff_client, product), operation="write_off", units="2"
    )
    assert response.status_code == 302
    assert stock_of(product).on_hand == 13
    moves = list(
        StockMovement.objects.filter(product=product)
        .order_by("id")
        .values_list("reason", "delta", "on_hand_after", "staff", "note")
    )
    assert moves[1:] == [("receipt", 5, 15, staff.pk, "PO 7"), ("write_off", -2, 13, staff.pk, "")]
    assert ledger_sum(product) == 13


def test_a_stock_count_is_applied_as_a_delta(staff_client, user):
    product = ProductFactory(on_hand=10)
    order_place(user=user, lines=[{"product": product.pk, "quantity": 2}])  # held, still on the shelf
    response = post_stock(
        staff_client, product, stock_page(staff_client, product), operation="count", units="8"
    )
    assert response.status_code == 302
    stock = stock_of(product)
    assert (stock.on_hand, stock.reserved) == (8, 2)
    assert StockMovement.objects.filter(product=product).latest("id").delta == -2


def test_a_stale_stock_count_is_refused_with_a_form_error(staff_client, user):
    product = ProductFactory(on_hand=10)
    page = stock_page(staff_client, product)  # staff start counting: 10 on hand
    sell(user, product, 1)  # meanwhile a unit is sold: 9

    response = post_stock(staff_client, product, page, operation="count", units="10")

    assert response.status_code == 200
    body = response.content.decode()
    assert "changed since you opened the form" in body and "it now has 9 on hand" in body
    assert stock_of(product).on_hand == 9  # not saved
    assert not StockMovement.objects.filter(product=product, reason="count").exists()
    # Counting again from the refused page counts against today's figure.
    assert form_data(body)["on_hand_seen"] == "9"
    assert post_stock(staff_client, product, body, operation="count", units="9").status_code == 302
    assert StockMovement.objects.filter(product=product, reason="count").get().delta == 0


@pytest.mark.parametrize(("operation", "units"), [("count", "1"), ("write_off", "9")])
def test_stock_cannot_go_below_what_pending_orders_hold(staff_client, user, operation, units):
    product = ProductFactory(on_hand=10)
    order_place(user=user, lines=[{"product": product.pk, "quantity": 2}])

    response = post_stock(
        staff_client, product, stock_page(staff_client, product), operation=operation, units=units
    )

    assert response.status_code == 200
    assert "2 units are held for pending orders" in response.content.decode()
    assert (stock_of(product).on_hand, stock_of(product).reserved) == (10, 2)


@pytest.mark.parametrize(
    "values",
    [
        {"operation": "receive", "units": "0"},
        {"operation": "receive", "units": "-3"},
        {"operation": "receive", "units": "lots"},
        {"operation": "steal", "units": "3"},
        {"operation": "count", "units": ""},
        {"operation": "receive", "units": "99999999999"},
    ],
)
def test_bad_stock_input_is_a_form_error(staff_client, values):
    product = ProductFactory(on_hand=10)
    response = post_stock(staff_client, product, stock_page(staff_client, product), **values)
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    assert stock_of(product).on_hand == 10 and StockMovement.objects.filter(product=product).count() == 1


def test_the_stock_page_needs_the_adjust_stock_permission(django_user_model):
    product = ProductFactory(on_hand=10)
    clerk = django_user_model.objects.create_user(username="clerk", password="pw-clerk-1", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_product"))
    client = Client()
    client.force_login(clerk)
    assert client.get(f"{PRODUCTS}{product.pk}/stock/").status_code == 403
    assert (
        client.post(
            f"{PRODUCTS}{product.pk}/stock/", {"operation": "receive", "units": "5", "on_hand_seen": "10"}
        ).status_code
        == 403
    )
    clerk.user_permissions.add(Permission.objects.get(codename="adjust_stock"))
    client.force_login(clerk)
    assert client.get(f"{PRODUCTS}{product.pk}/stock/").status_code == 200
    assert stock_of(product).on_hand == 10


def test_the_ledger_is_listed_read_only_and_linked_from_the_product_list(staff_client, user):
    product = ProductFactory(on_hand=10)
    sold = sell(user, product, 2)
    listing = staff_client.get(PRODUCTS).content.decode()
    assert f"/admin/inventory/stockmovement/?product__id__exact={product.pk}" in listing
    ledger = staff_client.get("/admin/inventory/stockmovement/", {"product__id__exact": product.pk})
    assert ledger.status_code == 200
    assert [m.reason for m in ledger.context["cl"].result_list] == ["sale", "opening_balance"]
    assert f"order #{sold.pk}" in ledger.content.decode()
    movement = StockMovement.objects.filter(product=product).latest("id")
    assert staff_client.get("/admin/inventory/stockmovement/add/").status_code == 403
    change = staff_client.post(f"/admin/inventory/stockmovement/{movement.pk}/change/", {"delta": "5"})
    assert change.status_code == 403
    delete = staff_client.post(f"/admin/inventory/stockmovement/{movement.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    assert StockMovement.objects.get(pk=movement.pk).delta == -2


def test_saving_a_refused_count_again_does_not_apply_the_old_figure(staff_client, user):
    product = ProductFactory(on_hand=10)
    page = stock_page(staff_client, product)
    sell(user, product, 1)
    refused = post_stock(staff_client, product, page, operation="count", units="10").content.decode()

    again = staff_client.post(f"{PRODUCTS}{product.pk}/stock/", form_data(refused))  # Save pressed again

    assert again.status_code == 200 and "errorlist" in again.content.decode()
    assert stock_of(product).on_hand == 9  # the sold unit stays sold
    assert not StockMovement.objects.filter(product=product, reason="count").exists()


def test_a_product_form_opened_before_another_save_is_refused(staff_client, django_user_model):
    product = ProductFactory(on_hand=10, price="10.00")
    page_a = staff_client.get(f"{PRODUCTS}{product.pk}/change/").content.decode()
    other = Client()
    other.force_login(django_user_model.objects.create_superuser("other", "o@example.com", "pw-other-1"))
    page_b = other.get(f"{PRODUCTS}{product.pk}/change/").content.decode()
    recall = {**form_data(page_b)}
    recall.pop("is_active")  # staff B takes the product off sale
    assert other.post(f"{PRODUCTS}{product.pk}/change/", recall).status_code == 302

    response = staff_client.post(f"{PRODUCTS}{product.pk}/change/", {**form_data(page_a), "price": "12.00"})

    assert response.status_code == 200
    assert "Someone saved this product after you opened this page" in response.content.decode()
    product.refresh_from_db()
    assert (product.is_active, str(product.price)) == (False, "10.00")


def test_odd_ids_on_the_stock_page_are_not_found(staff_client):
    for object_id in ("%C2%B2", "abc", "99999999999999999999999", "1.0"):
        assert staff_client.get(f"{PRODUCTS}{object_id}/stock/").status_code == 404, object_id


def test_only_staff_who_may_move_stock_set_the_opening_stock(django_user_model):
    clerk = django_user_model.objects.create_user(username="clerk", password="pw-clerk-1", is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["add_product", "view_product"]))
    client = Client()
    client.force_login(clerk)
    page = client.get(f"{PRODUCTS}add/").content.decode()
    assert 'name="opening_stock"' not in page
    data = {
        **form_data(page),
        "sku": "NEW-9",
        "name": "Sneaky",
        "slug": "sneaky",
        "price": "5.00",
        "opening_stock": "1000000",
    }
    assert client.post(f"{PRODUCTS}add/", data).status_code == 302
    assert stock_of(Product.objects.get(sku="NEW-9")).on_hand == 0
