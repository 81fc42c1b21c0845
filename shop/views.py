"""The storefront: catalog, product, cart and checkout pages.

Views are thin: the cart rules live in ``shop.cart``, order placement in ``orders.services`` (run on
the order worker pool, like the API) and the PayPal hand-off in ``payments.services``.
"""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponsePermanentRedirect
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from checkout.services import checkout_order, checkout_payment_link
from core.errors import ShopError, shopper_message
from core.throttling import page_limited
from inventory.models import Product
from inventory.selectors import product_get_active, product_list_active
from orders.errors import Busy, OutOfStock
from orders.models import OrderStatus
from orders.selectors import order_get_for_idempotency_key
from shop.cart import Cart, CartError, NotEnoughStock
from shop.forms import AddToCartForm, CartQuantityForm, SignupForm
from shop.services import user_register

CATALOG_PAGE_SIZE = 24


def catalog(request):
    page_obj = Paginator(product_list_active(), CATALOG_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "shop/catalog.html", {"page_obj": page_obj})


def product_detail(request, slug):
    product = product_get_active(slug=slug)
    form = AddToCartForm(initial={"product": product.pk, "quantity": 1})
    return render(request, "shop/product.html", _product_context(request, product, form))


def _product_context(request, product, form):
    return {"product": product, "form": form, "in_cart": Cart(request.session).quantity_of(product.pk)}


@require_http_methods(["GET", "POST"])
def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and page_limited(request, "signup"):
        form.is_valid()  # bound, so that it shows what was typed
        form.add_error(None, _("Too many sign-ups from here. Please try again in a minute."))
        next_url = _safe_next(request, request.POST.get("next")) or ""
        return render(request, "registration/signup.html", {"form": form, "next": next_url}, status=429)
    if request.method == "POST" and form.is_valid():
        user = user_register(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, _("Welcome, %(name)s! Your account is ready.") % {"name": user.username})
        return redirect(_safe_next(request, request.POST.get("next")) or "catalog")
    next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next")) or ""
    return render(request, "registration/signup.html", {"form": form, "next": next_url})


def _safe_next(request, url):
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return None


# --- Cart ------------------------------------------------------------------------------------------


@require_POST
def cart_add(request):
    form = AddToCartForm(request.POST)
    product = None
    if form.is_valid() or "product" not in form.errors:
        product = (
            Product.objects.filter(pk=form.cleaned_data.get("product"), is_active=True)
            .select_related("stock")
            .first()
        )
    if product is None:
        messages.error(request, _("This product is not available any more."))
        return redirect("catalog")
    if form.is_valid():
        try:
            line = Cart(request.session).add(product_id=product.pk, quantity=form.cleaned_data["quantity"])
        except CartError as error:
            form.add_error("quantity", error.message)
        else:
            messages.success(
                request,
                ngettext(
                    "Added %(count)d × %(name)s to your cart.",
                    "Added %(count)d × %(name)s to your cart.",
                    form.cleaned_data["quantity"],
                )
                % {"count": form.cleaned_data["quantity"], "name": line.product.name},
            )
            return redirect("cart")
    return render(request, "shop/product.html", _product_context(request, product, form), status=400)


def cart_detail(request):
    cart = Cart(request.session)
    lines = cart.lines()
    return render(request, "shop/cart.html", _cart_context(cart, lines))


def _cart_context(cart, lines, *, errors=None):
    errors = errors or {}
    rows = [
        {
            "line": line,
            "form": errors.get(line.product.pk)
            or CartQuantityForm(initial={"quantity": line.quantity}, prefix=f"line-{line.product.pk}"),
        }
        for line in lines
    ]
    return {
        "rows": rows,
        "total": cart.total(lines),
        "currency": lines[0].product.currency if lines else "",
        "has_stock_problem": any(line.exceeds_stock for line in lines),
    }


@require_POST
def cart_update(request, product_id):
    cart = Cart(request.session)
    form = CartQuantityForm(request.POST, prefix=f"line-{product_id}")
    if form.is_valid():
        try:
            line = cart.set_quantity(product_id=product_id, quantity=form.cleaned_data["quantity"])
        except NotEnoughStock as error:
            form.add_error("quantity", error.message)
        except CartError as error:
            messages.error(request, error.message)
            return redirect("cart")
        else:
            messages.success(
                request,
                _("%(name)s: quantity changed to %(count)d.")
                % {"name": line.product.name, "count": line.quantity},
            )
            return redirect("cart")
    messages.error(request, _("The quantity was not changed. Please correct the error below."))
    lines = cart.lines()
    if not any(line.product.pk == product_id for line in lines):
        return redirect("cart")
    return render(
        request, "shop/cart.html", _cart_context(cart, lines, errors={product_id: form}), status=400
    )


@require_POST
def cart_remove(request, product_id):
    cart = Cart(request.session)
    name = Product.objects.filter(pk=product_id).values_list("name", flat=True).first()
    if cart.remove(product_id=product_id):
        messages.success(request, _("%(name)s was removed from your cart.") % {"name": name})
    else:
        messages.info(request, _("That product was not in your cart."))
    return redirect("cart")


# --- Checkout --------------------------------------------------------------------------------------


def _out_of_stock_message(items) -> str:
    names = dict(Product.objects.filter(pk__in=[item["product"] for item in items]).values_list("pk", "name"))
    parts = []
    for item in items:
        name = names.get(item["product"], f"#{item['product']}")
        if item["available"] <= 0:
            parts.append(_("%(name)s is out of stock") % {"name": name})
        else:
            parts.append(
                ngettext(
                    "%(name)s: you asked for %(requested)d, only %(available)d is left",
                    "%(name)s: you asked for %(requested)d, only %(available)d are left",
                    item["available"],
                )
                % {"name": name, "requested": item["requested"], "available": item["available"]}
            )
    return _("Not enough stock: %(items)s. Please change your cart.") % {"items": "; ".join(parts)}


def _error_message(error: ShopError) -> str:
    """What the shopper reads about an error of the checkout: the error's own sentence, or the short
    lines of an ``OutOfStock``, named."""
    if isinstance(error, OutOfStock):
        return _out_of_stock_message(error.data.get("items", []))
    return shopper_message(error)


@login_required
@require_http_methods(["GET", "POST"])
def checkout(request):
    cart = Cart(request.session)
    lines = cart.lines()
    if request.method == "POST":
        return _checkout_place(request, cart)
    if not lines:
        messages.info(request, _("Your cart is empty."))
        return redirect("cart")
    context = _cart_context(cart, lines)
    context["checkout_token"] = cart.checkout_token()
    return render(request, "shop/checkout.html", context)


def _checkout_place(request, cart):
    posted_token = request.POST.get("checkout_token", "")
    if not posted_token or posted_token != request.session.get("checkout_token"):
        # Either this form was already submitted (the cart was ordered and emptied) or the cart
        # changed since the review page was shown.
        earlier = order_get_for_idempotency_key(user=request.user, idempotency_key=posted_token)
        if earlier is not None:
            return _to_payment(request, earlier)
        messages.warning(request, _("Your cart changed while you were checking out. Please review it again."))
        return redirect("checkout" if cart else "cart")
    if not cart:
        messages.info(request, _("Your cart is empty."))
        return redirect("cart")

    try:
        placed = checkout_order(
            user=request.user, lines=cart.order_lines(), idempotency_key=posted_token, language=get_language()
        )
        order, approval_url = placed.order, placed.approval_url
    except ShopError as error:
        messages.error(request, _error_message(error))
        if isinstance(error, Busy):
            return redirect("checkout")
        # Nothing was ordered, or the order failed before the shopper could pay (PayPal could not
        # be reached): the cart stays, with a new token, so that trying again places a new order.
        cart.renew_checkout_token()
        return redirect("cart")
    if order.status == OrderStatus.FAILED:  # the same token's order, which failed before payment
        cart.renew_checkout_token()
    else:
        cart.clear()
    return redirect(approval_url or order.get_absolute_url())


def _to_payment(request, order):
    """Send the shopper to PayPal to approve the payment of ``order`` again (a repeated submit)."""
    try:
        approval_url = checkout_payment_link(order=order)
    except ShopError as error:
        messages.error(request, _error_message(error))
        return redirect(order.get_absolute_url())
    return redirect(approval_url or order.get_absolute_url())


def favicon(request):
    """Browsers ask for /favicon.ico whatever the page says; send them to the static icon."""
    return HttpResponsePermanentRedirect(static("shop/favicon.svg"))
