"""The shopper's cart, kept in the session until checkout.

The session holds ``{"<product id>": quantity}`` under ``"cart"`` (the header's item count reads it,
see ``shop.context_processors``) and a one-time checkout token under ``"checkout_token"``. The token
is the idempotency key of the order placed from the cart: a double submit of the checkout form sends
the same token twice and gets the same order back. Any change to the cart draws a new token, so a
changed cart is never mistaken for the one already ordered.

Nothing here reserves stock: the availability checks are advice for the shopper, the order
placement checks again under lock.
"""

import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from core.errors import ShopError
from inventory.models import Product

CART_SESSION_KEY = "cart"
TOKEN_SESSION_KEY = "checkout_token"  # noqa: S105 - a session key, not a secret


class CartError(ShopError):
    code = "cart_error"


class UnknownProduct(CartError):
    code = "product_unavailable"
    default_message = _("This product is not available any more.")


class InvalidQuantity(CartError):
    code = "invalid_quantity"
    default_message = _("Enter a whole number of at least 1.")


class NotEnoughStock(CartError):
    code = "not_enough_stock"


class CartFull(CartError):
    code = "cart_full"


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def available(self) -> int:
        stock = getattr(self.product, "stock", None)
        return stock.available if stock is not None else 0

    @property
    def line_total(self) -> Decimal:
        return self.product.price * self.quantity

    @property
    def exceeds_stock(self) -> bool:
        return self.quantity > self.available


class Cart:
    """The session cart of one request. Every change is saved to the session at once."""

    def __init__(self, session):
        self.session = session
        raw = session.get(CART_SESSION_KEY)
        self._items: dict[str, int] = {}
        if isinstance(raw, dict):
            for key, quantity in raw.items():
                if str(key).isdigit() and type(quantity) is int and quantity > 0:
                    self._items[str(key)] = quantity

    # --- reading ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return sum(self._items.values())

    def __bool__(self) -> bool:
        return bool(self._items)

    def quantities(self) -> dict[int, int]:
        return {int(key): quantity for key, quantity in self._items.items()}

    def quantity_of(self, product_id: int) -> int:
        return self._items.get(str(product_id), 0)

    def lines(self) -> list[CartLine]:
        """The cart's lines with their products; products that went away are dropped from the cart."""
        products = Product.objects.filter(pk__in=self.quantities(), is_active=True).select_related("stock")
        by_id = {product.pk: product for product in products}
        lines = [
            CartLine(product=by_id[product_id], quantity=quantity)
            for product_id, quantity in self.quantities().items()
            if product_id in by_id
        ]
        if len(lines) != len(self._items):
            self._items = {str(line.product.pk): line.quantity for line in lines}
            self._save(rotate_token=True)
        return sorted(lines, key=lambda line: line.product.name)

    @staticmethod
    def total(lines: list[CartLine]) -> Decimal:
        return sum((line.line_total for line in lines), Decimal("0.00"))

    def order_lines(self) -> list[dict]:
        """The cart in the shape order placement takes."""
        return [
            {"product": product_id, "quantity": quantity}
            for product_id, quantity in sorted(self.quantities().items())
        ]

    def checkout_token(self) -> str:
        """The one-time token of the cart's present contents (created on first use)."""
        token = self.session.get(TOKEN_SESSION_KEY)
        if not token:
            token = self._new_token()
        return token

    # --- changing --------------------------------------------------------------------------------

    def add(self, *, product_id, quantity) -> CartLine:
        """Put ``quantity`` more units of the product in the cart."""
        quantity = self._positive_quantity(quantity)
        product = self._active_product(product_id)
        if str(product.pk) not in self._items and len(self._items) >= settings.ORDER_MAX_LINES:
            raise CartFull(
                _("Your cart can hold at most %(count)d different products.")
                % {"count": settings.ORDER_MAX_LINES}
            )
        new_quantity = self.quantity_of(product.pk) + quantity
        self._check_stock(product, new_quantity)
        self._items[str(product.pk)] = new_quantity
        self._save(rotate_token=True)
        return CartLine(product=product, quantity=new_quantity)

    def set_quantity(self, *, product_id, quantity) -> CartLine:
        """Change the quantity of a product that is in the cart."""
        quantity = self._positive_quantity(quantity)
        product = self._active_product(product_id)
        if str(product.pk) not in self._items:
            raise UnknownProduct(_("This product is not in your cart."))
        self._check_stock(product, quantity)
        self._items[str(product.pk)] = quantity
        self._save(rotate_token=True)
        return CartLine(product=product, quantity=quantity)

    def remove(self, *, product_id) -> bool:
        """Take the product out of the cart; False when it was not there."""
        removed = self._items.pop(str(product_id), None) is not None
        if removed:
            self._save(rotate_token=True)
        return removed

    def clear(self) -> None:
        self._items = {}
        self.session.pop(TOKEN_SESSION_KEY, None)
        self._save(rotate_token=False)

    def renew_checkout_token(self) -> None:
        """The order placed with the present token failed before payment: keep the cart, and let
        the next checkout place a new order instead of getting that one back."""
        self._save(rotate_token=True)

    # --- internals -------------------------------------------------------------------------------

    @staticmethod
    def _positive_quantity(quantity) -> int:
        if isinstance(quantity, bool):
            raise InvalidQuantity()
        if isinstance(quantity, str):
            quantity = quantity.strip()
            if not quantity.isdigit():
                raise InvalidQuantity()
            quantity = int(quantity)
        if not isinstance(quantity, int) or quantity < 1:
            raise InvalidQuantity()
        if quantity > settings.ORDER_MAX_QUANTITY_PER_LINE:
            raise InvalidQuantity(
                _("You can order at most %(count)d units of one product.")
                % {"count": settings.ORDER_MAX_QUANTITY_PER_LINE}
            )
        return quantity

    @staticmethod
    def _active_product(product_id) -> Product:
        try:
            product_id = int(product_id)
        except (TypeError, ValueError) as error:
            raise UnknownProduct() from error
        product = Product.objects.filter(pk=product_id, is_active=True).select_related("stock").first()
        if product is None or getattr(product, "stock", None) is None:
            raise UnknownProduct()
        return product

    @staticmethod
    def _check_stock(product: Product, quantity: int) -> None:
        available = product.stock.available
        if quantity > available:
            if available <= 0:
                message = _("Sorry, %(name)s is out of stock.") % {"name": product.name}
            else:
                message = ngettext(
                    "Only %(available)d unit of %(name)s is available.",
                    "Only %(available)d units of %(name)s are available.",
                    available,
                ) % {"available": available, "name": product.name}
            raise NotEnoughStock(message, product=product.pk, requested=quantity, available=available)

    def _new_token(self) -> str:
        token = f"checkout-{uuid.uuid4().hex}"
        self.session[TOKEN_SESSION_KEY] = token
        return token

    def _save(self, *, rotate_token: bool) -> None:
        self.session[CART_SESSION_KEY] = dict(self._items)
        if rotate_token:
            self._new_token()
        self.session.modified = True
