"""Checkout end to end in a real browser: the shop on the live server, PayPal's local simulator
(the real SDK over HTTP), the simulator's no-JavaScript payer page, and the staff admin."""

import re

import pytest
from playwright.sync_api import expect

from inventory.models import Stock
from inventory.tests.factories import ProductFactory
from orders.models import Order
from shop.tests.browser.steps import sign_up

pytestmark = pytest.mark.browser


@pytest.fixture
def products():
    return {
        "mug": ProductFactory(name="Enamel mug", slug="enamel-mug", price="12.50", on_hand=5),
        "cap": ProductFactory(name="Embroidered cap", slug="embroidered-cap", price="22.00", on_hand=3),
    }


def add_to_cart(page, slug, quantity):
    page.goto(f"/products/{slug}/")
    page.get_by_label("Quantity").fill(str(quantity))
    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_role("heading", name="Your cart")).to_be_visible()


def place_order(page, paypal, screenshot=None):
    """From a filled cart to the simulator's payer page; answers the order."""
    page.goto("/cart/")
    page.get_by_role("link", name="Check out").click()
    expect(page.get_by_role("heading", name="Review your order")).to_be_visible()
    if screenshot:
        screenshot(page, "review")
    page.get_by_role("button", name="Place order").click()
    expect(page).to_have_url(re.compile("^" + re.escape(paypal.url) + "/checkoutnow"))
    expect(page.get_by_role("button", name="Approve")).to_be_visible()
    return Order.objects.get(payment__provider_order_id=page.url.split("token=")[1].split("&")[0])


def test_shopper_signs_up_orders_two_products_and_pays(page, paypal, products, screenshot):
    sign_up(page, "carol")
    screenshot(page, "signed-up")
    add_to_cart(page, "enamel-mug", 2)
    add_to_cart(page, "embroidered-cap", 1)
    expect(page.locator("tfoot .total")).to_have_text("47.00 USD")
    screenshot(page, "cart")

    order = place_order(page, paypal, screenshot)
    assert order.status == "PENDING" and order.user.username == "carol"
    assert Stock.objects.get(pk=products["mug"].pk).reserved == 2
    screenshot(page, "paypal-approve-page")

    page.get_by_role("button", name="Approve").click()
    expect(page).to_have_url(re.compile(rf"/orders/{order.pk}/$"))
    expect(page.get_by_role("status")).to_contain_text("Thank you! Your payment was received")
    expect(page.locator("[data-order-status]")).to_have_text("Paid")
    expect(page.locator(".next-step")).to_contain_text("we are preparing your order")
    expect(page.locator(".badge")).to_have_text("0")  # the cart was emptied
    screenshot(page, "paid")

    page.get_by_role("link", name="My orders").first.click()
    row = page.locator("table.orders tbody tr", has_text=f"Order #{order.pk}")
    expect(row).to_contain_text("Paid")
    expect(row).to_contain_text("47.00 USD")
    screenshot(page, "order-list")

    order.refresh_from_db()
    assert (order.status, order.payment.status) == ("SUCCESS", "SUCCESS")
    mug, cap = Stock.objects.get(pk=products["mug"].pk), Stock.objects.get(pk=products["cap"].pk)
    assert (mug.on_hand, mug.reserved, cap.on_hand, cap.reserved) == (3, 0, 2, 0)


def test_shopper_cancels_at_paypal_and_the_stock_comes_back(page, paypal, products, screenshot):
    sign_up(page, "dave")
    add_to_cart(page, "embroidered-cap", 3)
    order = place_order(page, paypal)
    page.goto("/")
    expect(page.locator(".card", has_text="Embroidered cap")).to_contain_text("Out of stock")
    screenshot(page, "held-stock")

    page.go_back()
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    screenshot(page, "paypal-page")
    page.get_by_role("button", name="Cancel").click()
    expect(page).to_have_url(re.compile(rf"/orders/{order.pk}/$"))
    expect(page.get_by_role("status")).to_contain_text("You cancelled the payment at PayPal.")
    expect(page.locator("[data-order-status]")).to_have_text("Failed")
    expect(page.locator(".reason")).to_contain_text("The payment was cancelled at PayPal.")
    expect(page.locator(".next-step")).to_contain_text("You can order them again.")
    screenshot(page, "cancelled")

    page.goto("/")
    expect(page.locator(".card", has_text="Embroidered cap")).to_contain_text("3 available")
    order.refresh_from_db()
    assert (order.status, order.failure_reason) == ("FAILED", "payment_cancelled")
    assert Stock.objects.get(pk=products["cap"].pk).reserved == 0


def test_pending_order_page_counts_down_and_updates_itself(page, paypal, products, screenshot):
    from payments.services import payment_capture

    sign_up(page, "erin")
    add_to_cart(page, "enamel-mug", 1)
    order = place_order(page, paypal)
    page.goto(f"/orders/{order.pk}/")
    expect(page.locator("[data-order-status]")).to_have_text("Pending payment")
    timer = page.get_by_role("timer")
    first = timer.inner_text()
    assert re.fullmatch(r"1[45]:\d\d", first), first
    expect(timer).not_to_have_text(first)  # the countdown ticks
    expect(page.get_by_role("link", name="Pay with PayPal")).to_have_attribute(
        "href", re.compile("^" + re.escape(paypal.url))
    )
    screenshot(page, "pending")

    # The shopper pays in another tab; this page notices by itself (it polls the status endpoint).
    paypal.approve(order.payment.provider_order_id)
    payment_capture(order_id=order.pk)
    expect(page.locator("[data-order-status]")).to_have_text("Paid")
    expect(page.get_by_role("timer")).to_have_count(0)
    screenshot(page, "paid-without-reload")


def test_shopper_cancels_a_pending_order(page, paypal, products, screenshot):
    sign_up(page, "frank")
    add_to_cart(page, "enamel-mug", 2)
    order = place_order(page, paypal)
    page.goto(f"/orders/{order.pk}/")
    page.get_by_role("button", name="Cancel order").click()
    expect(page.get_by_role("status")).to_contain_text("Your order was cancelled. Nothing was charged.")
    expect(page.locator("[data-order-status]")).to_have_text("Failed")
    expect(page.locator(".reason")).to_contain_text("You cancelled the order.")
    expect(page.get_by_role("button", name="Cancel order")).to_have_count(0)
    screenshot(page, "cancelled")
    assert Stock.objects.get(pk=products["mug"].pk).reserved == 0


def test_staff_find_the_order_in_admin_and_refund_it(
    page, paypal, products, user, django_user_model, screenshot
):
    from orders.services import order_place
    from payments.services import payment_capture, payment_start

    django_user_model.objects.create_user(
        username="staffer",
        email="staffer@example.com",
        password="pw-staff-1",
        is_staff=True,
        is_superuser=True,
    )
    order = order_place(user=user, lines=[{"product": products["mug"].pk, "quantity": 2}])
    payment = payment_start(order_id=order.pk)
    paypal.approve(payment.provider_order_id)
    payment_capture(order_id=order.pk)

    page.goto("/admin/")
    page.get_by_label("Username").fill("staffer")
    page.get_by_label("Password").fill("pw-staff-1")
    page.get_by_role("button", name="Log in").click()
    page.locator("tr.model-order").get_by_role("link", name="Orders").click()
    page.locator("#searchbar").fill(str(order.transaction_id))
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list tbody tr")).to_contain_text("alice@example.com")
    screenshot(page, "found")

    page.locator("#result_list tbody tr").get_by_role("link", name=str(order.pk), exact=True).click()
    expect(page.locator("#payment-heading")).to_be_visible()
    expect(page.locator("#payment-group")).to_contain_text(payment.provider_order_id)
    screenshot(page, "order")

    page.go_back()
    page.locator("#result_list tbody input.action-select").check()
    page.get_by_role("combobox", name="Action").select_option(
        label="Refund the payment of the selected orders"
    )
    page.get_by_role("button", name="Go").click()
    expect(page.get_by_role("heading", name="Refund payments")).to_be_visible()
    expect(page.locator("table.confirm-action-rows")).to_contain_text("25.00 USD")
    screenshot(page, "confirm-refund")
    payment.refresh_from_db()
    assert payment.status == "SUCCESS"  # nothing moved before staff confirm
    page.get_by_role("button", name="Yes, refund them").click()
    expect(page.locator("ul.messagelist")).to_contain_text(
        f"Order #{order.pk}: 25.00 USD refunded through PayPal."
    )
    screenshot(page, "refunded")
    payment.refresh_from_db()
    assert payment.status == "REFUNDED" and payment.refund_id
    assert Order.objects.get(pk=order.pk).status == "SUCCESS"  # the goods were sold; the money went back


def test_checkout_works_without_javascript(open_page, paypal, products, screenshot):
    """Every step is a plain link or form; a pending order's page reloads itself (<noscript> refresh)."""
    from payments.services import payment_capture

    page = open_page(java_script_enabled=False)
    sign_up(page, "grace")
    add_to_cart(page, "enamel-mug", 1)
    add_to_cart(page, "embroidered-cap", 2)
    order = place_order(page, paypal)
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("[data-order-status]")).to_have_text("Paid")
    screenshot(page, "paid")

    add_to_cart(page, "enamel-mug", 1)
    second = place_order(page, paypal)
    assert second.pk != order.pk
    page.goto(f"/orders/{second.pk}/")
    expect(page.locator("[data-order-status]")).to_have_text("Pending payment")
    screenshot(page, "pending")
    paypal.approve(second.payment.provider_order_id)
    payment_capture(order_id=second.pk)
    expect(page.locator("[data-order-status]")).to_have_text("Paid")  # after the page's own refresh
    screenshot(page, "paid-after-refresh")
