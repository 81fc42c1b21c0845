"""The session cart: its rules (shop.cart) and its pages (add, change quantity, remove)."""

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.utils import translation

from inventory.models import Stock
from inventory.tests.factories import ProductFactory
from shop.cart import Cart, InvalidQuantity, NotEnoughStock, UnknownProduct

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    """The rules' messages are checked in English, whatever language an earlier test left active."""
    with translation.override("en"):
        yield


def session_cart(client):
    return client.session.get("cart", {})


# --- the rules ---------------------------------------------------------------------------------------


def test_add_merges_quantities_and_counts_items():
    mug = ProductFactory(on_hand=5)
    cart = Cart(SessionStore())
    cart.add(product_id=mug.pk, quantity=2)
    cart.add(product_id=str(mug.pk), quantity="3")
    assert cart.quantities() == {mug.pk: 5}
    assert len(cart) == 5
    assert cart.order_lines() == [{"product": mug.pk, "quantity": 5}]


@pytest.mark.parametrize("quantity", [0, -1, "0", "1.5", "abc", "", None, True, 1.5])
def test_quantity_must_be_a_positive_whole_number(quantity):
    mug = ProductFactory(on_hand=5)
    cart = Cart(SessionStore())
    with pytest.raises(InvalidQuantity):
        cart.add(product_id=mug.pk, quantity=quantity)
    assert cart.quantities() == {}


def test_quantity_has_a_ceiling(settings):
    settings.ORDER_MAX_QUANTITY_PER_LINE = 3
    mug = ProductFactory(on_hand=50)
    with pytest.raises(InvalidQuantity, match="at most 3"):
        Cart(SessionStore()).add(product_id=mug.pk, quantity=4)


def test_unknown_and_inactive_products_are_refused():
    hidden = ProductFactory(is_active=False)
    cart = Cart(SessionStore())
    for product_id in (hidden.pk, 999_999, "x", None):
        with pytest.raises(UnknownProduct):
            cart.add(product_id=product_id, quantity=1)


def test_more_than_available_is_refused_with_the_numbers():
    mug = ProductFactory(name="Mug", on_hand=3)
    Stock.objects.filter(pk=mug.pk).update(reserved=1)
    cart = Cart(SessionStore())
    cart.add(product_id=mug.pk, quantity=2)
    with pytest.raises(NotEnoughStock) as caught:
        cart.add(product_id=mug.pk, quantity=1)
    assert caught.value.data == {"product": mug.pk, "requested": 3, "available": 2}
    assert "Only 2 units of Mug are available." in caught.value.message
    assert cart.quantities() == {mug.pk: 2}


def test_set_quantity_and_remove():
    mug, cap = ProductFactory(on_hand=5), ProductFactory(on_hand=5)
    cart = Cart(SessionStore())
    cart.add(product_id=mug.pk, quantity=1)
    cart.set_quantity(product_id=mug.pk, quantity=4)
    assert cart.quantities() == {mug.pk: 4}
    with pytest.raises(UnknownProduct):
        cart.set_quantity(product_id=cap.pk, quantity=1)  # not in the cart
    with pytest.raises(NotEnoughStock):
        cart.set_quantity(product_id=mug.pk, quantity=6)
    assert cart.remove(product_id=mug.pk) is True
    assert cart.remove(product_id=mug.pk) is False
    assert not cart


def test_every_change_draws_a_new_checkout_token():
    mug = ProductFactory(on_hand=5)
    session = SessionStore()
    cart = Cart(session)
    cart.add(product_id=mug.pk, quantity=1)
    first = cart.checkout_token()
    assert first == Cart(session).checkout_token()  # stable while the cart does not change
    cart.set_quantity(product_id=mug.pk, quantity=2)
    assert cart.checkout_token() != first
    cart.clear()
    assert "checkout_token" not in session and session["cart"] == {}


def test_products_that_went_away_leave_the_cart():
    mug, cap = ProductFactory(name="Mug", on_hand=5), ProductFactory(name="Cap", on_hand=5)
    session = SessionStore()
    cart = Cart(session)
    cart.add(product_id=mug.pk, quantity=1)
    cart.add(product_id=cap.pk, quantity=1)
    cap.is_active = False
    cap.save()
    assert [line.product.name for line in cart.lines()] == ["Mug"]
    assert session["cart"] == {str(mug.pk): 1}


def test_a_tampered_session_is_ignored():
    session = SessionStore()
    session["cart"] = {"1": "lots", "abc": 2, "2": -4, "3": True}
    assert Cart(session).quantities() == {}
    session["cart"] = ["not", "a", "dict"]
    assert Cart(session).quantities() == {}


# --- the pages -------------------------------------------------------------------------------------


def test_add_to_cart_from_the_product_page(client):
    mug = ProductFactory(name="Blue mug", on_hand=5)
    page = client.get(mug.get_absolute_url()).content.decode()
    assert 'name="csrfmiddlewaretoken"' in page and 'name="quantity"' in page and "Add to cart" in page

    response = client.post("/cart/add/", {"product": mug.pk, "quantity": 2}, follow=True)
    assert response.redirect_chain == [("/cart/", 302)]
    page = response.content.decode()
    assert "Added 2 × Blue mug to your cart." in page
    assert session_cart(client) == {str(mug.pk): 2}
    assert '<span class="badge"' in page and ">2</span>" in page  # the header's item count


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        ("0", "Enter a whole number of at least 1."),
        ("-3", "Enter a whole number of at least 1."),
        ("2.5", "Enter a whole number of at least 1."),
        ("two", "Enter a whole number of at least 1."),
        ("", "Enter a quantity."),
        ("6", "Only 5 units of Blue mug are available."),
    ],
)
def test_add_to_cart_shows_the_error_on_the_form(client, quantity, message):
    mug = ProductFactory(name="Blue mug", on_hand=5)
    response = client.post("/cart/add/", {"product": mug.pk, "quantity": quantity})
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert 'aria-invalid="true"' in page
    assert session_cart(client) == {}


def test_add_to_cart_refuses_unknown_or_inactive_products(client):
    hidden = ProductFactory(is_active=False)
    for product in (hidden.pk, 424242, "nope"):
        response = client.post("/cart/add/", {"product": product, "quantity": 1}, follow=True)
        assert response.redirect_chain == [("/", 302)]
        assert "This product is not available any more." in response.content.decode()
    assert session_cart(client) == {}


def test_add_to_cart_counts_what_is_already_in_the_cart(client):
    mug = ProductFactory(name="Blue mug", on_hand=3)
    client.post("/cart/add/", {"product": mug.pk, "quantity": 2})
    response = client.post("/cart/add/", {"product": mug.pk, "quantity": 2})
    assert response.status_code == 400
    assert "Only 3 units of Blue mug are available." in response.content.decode()
    assert session_cart(client) == {str(mug.pk): 2}


def test_out_of_stock_product_has_no_add_form(client):
    lamp = ProductFactory(name="Desk lamp", on_hand=0)
    page = client.get(lamp.get_absolute_url()).content.decode()
    assert "Out of stock" in page and "Add to cart" not in page
    response = client.post("/cart/add/", {"product": lamp.pk, "quantity": 1})
    assert response.status_code == 400
    assert "Sorry, Desk lamp is out of stock." in response.content.decode()


def test_cart_page_lists_lines_and_total(client):
    mug = ProductFactory(name="Blue mug", price="12.50", on_hand=5)
    cap = ProductFactory(name="Cap", price="1000.00", on_hand=5)
    client.post("/cart/add/", {"product": mug.pk, "quantity": 2})
    client.post("/cart/add/", {"product": cap.pk, "quantity": 1})
    page = client.get("/cart/").content.decode()
    assert page.index("Blue mug") < page.index("Cap")
    assert "25.00 USD" in page and "1,025.00 USD" in page
    assert page.count('name="csrfmiddlewaretoken"') >= 5  # update and remove of each line, header forms
    assert 'href="/checkout/"' in page


def test_change_quantity(client):
    mug = ProductFactory(name="Blue mug", on_hand=5)
    client.post("/cart/add/", {"product": mug.pk, "quantity": 1})
    response = client.post(f"/cart/{mug.pk}/quantity/", {f"line-{mug.pk}-quantity": "4"}, follow=True)
    assert "Blue mug: quantity changed to 4." in response.content.decode()
    assert session_cart(client) == {str(mug.pk): 4}


@pytest.mark.parametrize(
    ("quantity", "message"),
    [("0", "Enter a whole number of at least 1."), ("9", "Only 5 units of Blue mug are available.")],
)
def test_change_quantity_errors_stay_on_the_line(client, quantity, message):
    mug = ProductFactory(name="Blue mug", on_hand=5)
    client.post("/cart/add/", {"product": mug.pk, "quantity": 1})
    response = client.post(f"/cart/{mug.pk}/quantity/", {f"line-{mug.pk}-quantity": quantity})
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page and "The quantity was not changed." in page
    assert f'id="id_line-{mug.pk}-quantity-errors"' in page
    assert session_cart(client) == {str(mug.pk): 1}


def test_change_quantity_of_a_product_not_in_the_cart(client):
    mug = ProductFactory(on_hand=5)
    response = client.post(f"/cart/{mug.pk}/quantity/", {f"line-{mug.pk}-quantity": "1"}, follow=True)
    assert "This product is not in your cart." in response.content.decode()
    assert session_cart(client) == {}


def test_remove(client):
    mug = ProductFactory(name="Blue mug", on_hand=5)
    client.post("/cart/add/", {"product": mug.pk, "quantity": 1})
    response = client.post(f"/cart/{mug.pk}/remove/", follow=True)
    page = response.content.decode()
    assert "Blue mug was removed from your cart." in page and "Your cart is empty." in page
    assert session_cart(client) == {}
    response = client.post(f"/cart/{mug.pk}/remove/", follow=True)
    assert "That product was not in your cart." in response.content.decode()


def test_cart_warns_when_stock_dropped_below_the_cart(client):
    mug = ProductFactory(name="Blue mug", on_hand=5)
    client.post("/cart/add/", {"product": mug.pk, "quantity": 4})
    Stock.objects.filter(pk=mug.pk).update(on_hand=2)
    page = client.get("/cart/").content.decode()
    assert "Some products no longer have enough stock." in page
    assert "Only 2 available" in page


def test_cart_changes_need_post_and_csrf(client):
    from django.test import Client

    mug = ProductFactory(on_hand=5)
    assert client.get("/cart/add/").status_code == 405
    assert client.get(f"/cart/{mug.pk}/remove/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/cart/add/", {"product": mug.pk, "quantity": 1}).status_code == 403
