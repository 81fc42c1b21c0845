"""The storefront in a real browser, without PayPal: sign up, cart, stock messages, Vietnamese."""

import re

import pytest
from playwright.sync_api import expect

from inventory.models import Stock
from inventory.tests.factories import ProductFactory
from shop.tests.browser.steps import sign_up

pytestmark = pytest.mark.browser


def test_cart_validation_messages(page, screenshot):
    ProductFactory(name="Enamel mug", slug="enamel-mug", on_hand=3)
    page.goto("/products/enamel-mug/")
    quantity = page.get_by_label("Quantity")
    quantity.fill("0")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_role("alert")).to_have_text("Enter a whole number of at least 1.")
    expect(page.get_by_label("Quantity")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "zero-quantity")

    page.get_by_label("Quantity").fill("4")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_role("alert")).to_have_text("Only 3 units of Enamel mug are available.")
    screenshot(page, "more-than-available")

    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add to cart").click()
    expect(page).to_have_url(re.compile(r"/cart/$"))
    expect(page.get_by_role("status")).to_contain_text("Added 2 × Enamel mug to your cart.")
    expect(page.locator(".badge")).to_have_text("2")
    screenshot(page, "cart")

    page.get_by_label("Quantity of Enamel mug").fill("1")
    page.get_by_role("button", name="Update").click()
    expect(page.get_by_role("status")).to_contain_text("Enamel mug: quantity changed to 1.")
    page.get_by_role("button", name="Remove Enamel mug from the cart").click()
    expect(page.get_by_text("Your cart is empty.").first).to_be_visible()
    expect(page.locator(".badge")).to_have_text("0")
    screenshot(page, "removed")


def test_out_of_stock_at_checkout(page, screenshot):
    from orders.models import Order

    ProductFactory(name="Embroidered cap", slug="embroidered-cap", on_hand=3)
    cap = ProductFactory(name="Dot-grid notebook", slug="notebook", on_hand=2)
    sign_up(page)
    page.goto("/products/embroidered-cap/")
    page.get_by_label("Quantity").fill("3")
    page.get_by_role("button", name="Add to cart").click()
    page.goto("/products/notebook/")
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Check out").click()
    expect(page.get_by_role("heading", name="Review your order")).to_be_visible()
    screenshot(page, "review")

    Stock.objects.filter(product__slug="embroidered-cap").update(on_hand=1)  # sold elsewhere meanwhile
    page.get_by_role("button", name="Place order").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Not enough stock: Embroidered cap: you asked for 3, only 1 is left. Please change your cart."
    )
    expect(page.get_by_role("alert")).to_contain_text("Some products no longer have enough stock.")
    screenshot(page, "out-of-stock")
    assert not Order.objects.exists()
    assert Stock.objects.get(pk=cap.pk).reserved == 0

    Stock.objects.filter(product__slug="embroidered-cap").update(on_hand=0)
    page.goto("/")
    expect(page.locator(".card", has_text="Embroidered cap")).to_contain_text("Out of stock")
    expect(page.locator(".card", has_text="Embroidered cap").get_by_role("button")).to_have_count(0)
    screenshot(page, "catalog-out-of-stock")


def test_vietnamese_pages(page, screenshot):
    ProductFactory(name="Phin coffee filter", slug="phin", price="8.50", on_hand=1)
    page.goto("/")
    expect(page.get_by_role("heading", name="Catalog")).to_be_visible()
    page.get_by_label("Language").select_option("vi")
    page.get_by_role("button", name="Change").click()
    expect(page.get_by_role("heading", name="Danh mục")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "vi")
    card = page.locator(".card", has_text="Phin coffee filter")
    expect(card).to_contain_text("8,50 USD")
    expect(card).to_contain_text("Còn 1 sản phẩm")
    expect(card).to_contain_text("Sắp hết hàng")
    screenshot(page, "catalog-vi")

    card.get_by_role("button", name="Thêm một Phin coffee filter vào giỏ hàng").click()
    expect(page.get_by_role("heading", name="Giỏ hàng của bạn")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Đã thêm 1 × Phin coffee filter vào giỏ hàng.")
    screenshot(page, "cart-vi")

    page.get_by_role("link", name="Thanh toán").click()  # checkout needs an account
    expect(page.get_by_role("heading", name="Đăng nhập")).to_be_visible()
    expect(page.get_by_text("Vui lòng đăng nhập để xem trang này.")).to_be_visible()
    screenshot(page, "login-vi")

    page.goto("/no-such-page/")
    expect(page.get_by_role("heading", name="Không tìm thấy trang")).to_be_visible()
    screenshot(page, "404-vi")

    page.get_by_label("Ngôn ngữ").select_option("en")
    page.get_by_role("button", name="Đổi").click()
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()


def test_forgot_password_from_the_login_page(page, screenshot, smtp_settings, smtp_server, django_user_model):
    django_user_model.objects.create_user("gail", "gail@example.com", "old-pass-123")
    page.goto("/accounts/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill("gail@example.com")
    page.get_by_role("button", name="Send me the link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    screenshot(page, "sent")

    (message,) = smtp_server.wait_for(1)
    body = next(part.get_content() for part in message.walk() if part.get_content_type() == "text/plain")
    page.goto(re.search(r"https?://\S+/accounts/reset/\S+/", body).group(0))
    page.get_by_label("New password:", exact=True).fill("brand-new-pass-7")
    page.get_by_label("New password confirmation:").fill("brand-new-pass-7")
    page.get_by_role("button", name="Change my password").click()
    expect(page.get_by_role("heading", name="Password changed")).to_be_visible()
    page.get_by_role("link", name="Log in", exact=True).last.click()
    page.get_by_label("Username").fill("gail")
    page.get_by_label("Password").fill("brand-new-pass-7")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Signed in as gail")).to_be_visible()
    screenshot(page, "signed-in")
