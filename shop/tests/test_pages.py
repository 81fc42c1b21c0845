import pytest
from django.contrib.auth import get_user_model

from inventory.tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def test_catalog_lists_active_products_with_availability(client):
    ProductFactory(name="Blue mug", on_hand=4)
    ProductFactory(name="Hidden", is_active=False)
    page = client.get("/").content.decode()
    assert "Blue mug" in page and "4 available" in page
    assert "Hidden" not in page


def test_signup_logs_the_shopper_in(client):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "erin",
            "email": "erin@example.com",
            "password1": "a-strong-pass-42",
            "password2": "a-strong-pass-42",
        },
    )
    assert response.status_code == 302
    assert get_user_model().objects.filter(username="erin", email="erin@example.com").exists()
    assert "erin" in client.get("/").content.decode()


def test_signup_shows_form_errors(client):
    response = client.post(
        "/accounts/signup/", {"username": "erin", "email": "bad", "password1": "x", "password2": "y"}
    )
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert not get_user_model().objects.filter(username="erin").exists()


def test_login_and_logout(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice-1"})
    assert response.status_code == 302
    assert "alice" in client.get("/").content.decode()
    client.post("/accounts/logout/")
    assert "Signed in as alice" not in client.get("/").content.decode()


# --- checkout ----------------------------------------------------------------------------------------
# Placement runs on the order worker pool's threads, which only see committed rows: these tests
# use a transactional database.

checkout_db = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_paypal(monkeypatch):
    """Stands in for the checkout's payment_start: records the PayPal order on the payment."""
    from payments.models import Payment

    started = []

    def payment_start(*, order_id, order=None):
        started.append(order_id)
        Payment.objects.filter(order_id=order_id).update(
            provider_order_id=f"PP-{order_id}", approval_url=f"http://paypal.test/approve/PP-{order_id}"
        )
        return Payment.objects.get(order_id=order_id)

    monkeypatch.setattr("checkout.services.payment_start", payment_start)
    return started


@pytest.fixture
def shopper_client(client, user):
    client.force_login(user)
    return client


def fill_cart(client, *lines):
    for product, quantity in lines:
        response = client.post("/cart/add/", {"product": product.pk, "quantity": quantity})
        assert response.status_code == 302, response.content.decode()


def checkout_token(client):
    page = client.get("/checkout/").content.decode()
    marker = 'name="checkout_token" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_checkout_needs_login(client):
    mug = ProductFactory(on_hand=5)
    fill_cart(client, (mug, 1))
    response = client.get("/checkout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/checkout/"
    assert client.post("/checkout/", {"checkout_token": "x"})["Location"].startswith("/accounts/login/")
    login_page = client.get(response["Location"]).content.decode()
    assert 'href="/accounts/signup/?next=/checkout/"' in login_page
    assert session_cart(client) == {str(mug.pk): 1}  # logging in keeps the cart


def session_cart(client):
    return client.session.get("cart", {})


def test_checkout_with_an_empty_cart_goes_back_to_the_cart(shopper_client):
    response = shopper_client.get("/checkout/", follow=True)
    assert response.redirect_chain == [("/cart/", 302)]
    assert "Your cart is empty." in response.content.decode()


def test_checkout_review_page(shopper_client):
    mug = ProductFactory(name="Blue mug", price="12.50", on_hand=5)
    fill_cart(shopper_client, (mug, 2))
    page = shopper_client.get("/checkout/").content.decode()
    assert "Review your order" in page and "Blue mug" in page and "25.00 USD" in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert "Place order" in page
    assert checkout_token(shopper_client) == shopper_client.session["checkout_token"]


@checkout_db
def test_place_order_redirects_to_paypal_and_empties_the_cart(shopper_client, user, fake_paypal):
    from orders.models import Order

    mug, cap = ProductFactory(name="Mug", on_hand=5), ProductFactory(name="Cap", on_hand=5)
    fill_cart(shopper_client, (mug, 2), (cap, 1))
    token = checkout_token(shopper_client)
    response = shopper_client.post("/checkout/", {"checkout_token": token})
    order = Order.objects.get(user=user)
    assert response.status_code == 302
    assert response["Location"] == f"http://paypal.test/approve/PP-{order.pk}"
    assert order.status == "PENDING" and order.idempotency_key == token and order.language == "en"
    assert sorted(order.lines.values_list("product_id", "quantity")) == sorted([(mug.pk, 2), (cap.pk, 1)])
    assert fake_paypal == [order.pk]
    assert session_cart(shopper_client) == {}
    assert "checkout_token" not in shopper_client.session


@checkout_db
def test_double_submit_places_one_order(shopper_client, user, fake_paypal):
    from orders.models import Order

    mug = ProductFactory(on_hand=5)
    fill_cart(shopper_client, (mug, 2))
    token = checkout_token(shopper_client)
    first = shopper_client.post("/checkout/", {"checkout_token": token})
    second = shopper_client.post("/checkout/", {"checkout_token": token})  # the cart is already empty
    assert Order.objects.filter(user=user).count() == 1
    assert first["Location"] == second["Location"]
    assert fake_paypal == [Order.objects.get().pk]  # PayPal was asked once


@checkout_db
def test_double_submit_racing_the_session_places_one_order(shopper_client, user, fake_paypal):
    """Both submits read the session before either saved it: the token is the idempotency key."""
    from orders.models import Order

    mug = ProductFactory(on_hand=5)
    fill_cart(shopper_client, (mug, 2))
    token = checkout_token(shopper_client)
    saved = dict(shopper_client.session.items())
    first = shopper_client.post("/checkout/", {"checkout_token": token})
    session = shopper_client.session
    session.update(saved)  # the second request still sees the cart and the token
    session.save()
    second = shopper_client.post("/checkout/", {"checkout_token": token})
    assert Order.objects.filter(user=user).count() == 1
    assert first["Location"] == second["Location"]


@checkout_db
def test_a_stale_review_page_does_not_order(shopper_client, user, fake_paypal):
    from orders.models import Order

    mug = ProductFactory(on_hand=5)
    fill_cart(shopper_client, (mug, 1))
    token = checkout_token(shopper_client)
    fill_cart(shopper_client, (mug, 1))  # the cart changed in another tab
    response = shopper_client.post("/checkout/", {"checkout_token": token}, follow=True)
    assert response.redirect_chain == [("/checkout/", 302)]
    assert "Your cart changed while you were checking out." in response.content.decode()
    assert not Order.objects.exists()


@checkout_db
def test_out_of_stock_at_placement_explains_and_keeps_the_cart(shopper_client, fake_paypal):
    from inventory.models import Stock
    from orders.models import Order

    mug = ProductFactory(name="Blue mug", on_hand=5)
    fill_cart(shopper_client, (mug, 4))
    token = checkout_token(shopper_client)
    Stock.objects.filter(pk=mug.pk).update(on_hand=1)  # somebody else bought them meanwhile
    response = shopper_client.post("/checkout/", {"checkout_token": token}, follow=True)
    assert response.redirect_chain == [("/cart/", 302)]
    page = response.content.decode()
    assert "Not enough stock: Blue mug: you asked for 4, only 1 is left." in page
    assert not Order.objects.exists() and fake_paypal == []
    assert session_cart(shopper_client) == {str(mug.pk): 4}


@checkout_db
def test_busy_pool_asks_to_try_again(shopper_client, monkeypatch, fake_paypal):
    from orders.errors import Busy
    from orders.models import Order

    def busy(**kwargs):
        raise Busy()

    monkeypatch.setattr("checkout.services.checkout_place", busy)
    mug = ProductFactory(on_hand=5)
    fill_cart(shopper_client, (mug, 1))
    response = shopper_client.post(
        "/checkout/", {"checkout_token": checkout_token(shopper_client)}, follow=True
    )
    assert response.redirect_chain == [("/checkout/", 302)]
    assert "The shop is very busy right now." in response.content.decode()
    assert not Order.objects.exists()
    assert session_cart(shopper_client) == {str(mug.pk): 1}


@checkout_db
def test_paypal_unreachable_keeps_the_cart_and_the_next_try_places_a_new_order(
    shopper_client, user, paypal, paypal_unreachable, settings
):
    from orders.models import Order

    mug = ProductFactory(on_hand=5)
    fill_cart(shopper_client, (mug, 2))
    token = checkout_token(shopper_client)
    response = shopper_client.post("/checkout/", {"checkout_token": token}, follow=True)

    assert response.redirect_chain == [("/cart/", 302)]
    page = response.content.decode()
    assert "PayPal could not be reached, so your order was cancelled" in page
    failed = Order.objects.get(user=user)
    assert (failed.status, failed.failure_reason) == ("FAILED", "gateway_error")
    assert session_cart(shopper_client) == {str(mug.pk): 2}  # the cart survived
    assert checkout_token(shopper_client) != token  # and the next submit is a new order

    settings.PAYPAL_API_BASE = paypal.server.url  # PayPal answers again
    response = shopper_client.post("/checkout/", {"checkout_token": checkout_token(shopper_client)})
    placed = Order.objects.filter(user=user).exclude(pk=failed.pk).get()
    assert response["Location"] == placed.payment.approval_url
    assert placed.status == "PENDING" and session_cart(shopper_client) == {}


def test_checkout_form_carries_csrf(client, user):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post("/checkout/", {"checkout_token": "x"}).status_code == 403


# --- error pages -------------------------------------------------------------------------------------


def test_friendly_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "Page not found" in page and 'href="/"' in page


def test_500_template_renders_without_a_request():
    from django.template.loader import render_to_string

    page = render_to_string("500.html")
    assert "Something went wrong" in page and "shop.css" in page


# --- Vietnamese ----------------------------------------------------------------------------------


def test_switch_to_vietnamese_and_back(client):
    mug = ProductFactory(name="Blue mug", price="1234.50", on_hand=4)
    response = client.post("/i18n/setlang/", {"language": "vi", "next": "/"}, follow=True)
    assert response.redirect_chain == [("/", 302)]
    page = response.content.decode()
    assert '<html lang="vi">' in page
    assert "Danh mục" in page and "Giỏ hàng" in page and "Thêm vào giỏ" in page and "Đăng nhập" in page
    assert "Còn 4 sản phẩm" in page and "Sắp hết hàng" in page
    assert "1.234,50 USD" in page  # Vietnamese decimal comma and dot grouping (shop/formats/vi)
    page = client.get(mug.get_absolute_url()).content.decode()
    assert "Số lượng" in page and "Mã SKU" in page
    page = client.post("/i18n/setlang/", {"language": "en", "next": "/"}, follow=True).content.decode()
    assert "Catalog" in page and "1,234.50 USD" in page and "Danh mục" not in page


def test_vietnamese_cart_messages_and_errors(client):
    client.cookies["django_language"] = "vi"
    mug = ProductFactory(name="Blue mug", on_hand=3)
    page = client.post("/cart/add/", {"product": mug.pk, "quantity": "0"}).content.decode()
    assert "Hãy nhập một số nguyên từ 1 trở lên." in page
    page = client.post("/cart/add/", {"product": mug.pk, "quantity": "5"}).content.decode()
    assert "Chỉ còn 3 sản phẩm Blue mug." in page
    page = client.post("/cart/add/", {"product": mug.pk, "quantity": "2"}, follow=True).content.decode()
    assert "Đã thêm 2 × Blue mug vào giỏ hàng." in page and "Giỏ hàng của bạn" in page


def test_vietnamese_error_pages(client):
    from django.template.loader import render_to_string
    from django.utils import translation

    client.cookies["django_language"] = "vi"
    assert "Không tìm thấy trang" in client.get("/no-such-page/").content.decode()
    with translation.override("vi"):
        assert "Đã xảy ra lỗi" in render_to_string("500.html")


def test_there_is_a_favicon(client):
    page = client.get("/").content.decode()
    assert 'rel="icon"' in page and "favicon.svg" in page
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("shop/favicon.svg")


def test_the_catalog_and_my_orders_are_paged(client, django_user_model):
    from checkout.views import ORDERS_PAGE_SIZE
    from orders.services import order_place
    from shop.views import CATALOG_PAGE_SIZE

    for i in range(CATALOG_PAGE_SIZE + 1):
        ProductFactory(name=f"Thing {i:03d}", on_hand=5)
    first = client.get("/").content.decode()
    assert "Thing 000" in first and f"Thing {CATALOG_PAGE_SIZE:03d}" not in first
    assert 'rel="next" href="?page=2"' in first and "Page 1 of 2" in first
    second = client.get("/?page=2").content.decode()
    assert f"Thing {CATALOG_PAGE_SIZE:03d}" in second and "Thing 000" not in second
    assert client.get("/?page=abc").status_code == 200  # a bad page number shows the first page

    shopper = django_user_model.objects.create_user("pat", "pat@example.com", "pw-pat-12345")
    client.force_login(shopper)
    plenty = ProductFactory(name="Plenty", on_hand=100)
    orders = [
        order_place(user=shopper, lines=[{"product": plenty.pk, "quantity": 1}])
        for _ in range(ORDERS_PAGE_SIZE + 1)
    ]
    page = client.get("/orders/").content.decode()
    assert f"/orders/{orders[-1].pk}/" in page and f'/orders/{orders[0].pk}/"' not in page
    assert f"/orders/{orders[0].pk}/" in client.get("/orders/?page=2").content.decode()
