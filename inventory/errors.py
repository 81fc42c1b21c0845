from django.utils.translation import gettext_lazy as _

from core.errors import ShopError


class InventoryError(ShopError):
    code = "inventory_error"


class StockChangedMeanwhile(InventoryError):
    """A stock count was entered against an ``on_hand`` that has moved since the form was loaded."""

    code = "stock_changed_meanwhile"
    default_message = _(
        "The stock of this product changed since you opened the form (it now has %(on_hand)d on hand). "
        "Count again and enter the new figure."
    )

    def __init__(self, *, on_hand: int):
        super().__init__(self.default_message % {"on_hand": on_hand}, on_hand=on_hand)


class StockBelowReserved(InventoryError):
    """The change would leave fewer units on hand than are held for pending orders."""

    code = "stock_below_reserved"
    default_message = _(
        "%(reserved)d units are held for pending orders, so on hand cannot go below %(reserved)d "
        "(it would be %(on_hand)d)."
    )

    def __init__(self, *, reserved: int, on_hand: int):
        super().__init__(
            self.default_message % {"reserved": reserved, "on_hand": on_hand},
            reserved=reserved,
            on_hand=on_hand,
        )


class InvalidStockQuantity(InventoryError):
    code = "invalid_stock_quantity"
    default_message = _("The number of units must be a whole number of at least 1.")
