from django.utils.translation import gettext_lazy as _

from core.errors import ShopError


class OrderError(ShopError):
    code = "order_error"


class InvalidOrder(OrderError):
    """The order request itself is wrong; ``errors`` says what, per field or line."""

    code = "invalid"
    shopper_message = _("Your cart cannot be ordered as it is. Please check it and try again.")
    default_message = "The order is not valid."


class UnknownProducts(InvalidOrder):
    """Some lines name a product that does not exist or is not for sale (a fact of the catalog, not of
    the request's shape)."""

    code = "unknown_product"
    default_message = "Some products do not exist or are not for sale."


class ProductQuantityExceeded(InvalidOrder):
    """Lines naming the same product add up to more than ``ORDER_MAX_QUANTITY_PER_LINE``: a rule across
    lines, which JSON Schema cannot state, so it has a code of its own."""

    code = "product_quantity_exceeded"


class OutOfStock(OrderError):
    """Some lines ask for more than is available; ``items`` lists every short line.

    ``expired_with_provider`` (not part of the answer: they are other shoppers' orders) lists the
    expired orders with a PayPal order that hold these products: placement does not fail them
    without asking PayPal, so the payments code may settle them and place again.
    """

    code = "out_of_stock"
    http_status = 409
    default_message = "Some products do not have enough stock."

    def __init__(self, items, *, expired_with_provider=()):
        self.expired_with_provider = tuple(expired_with_provider)
        super().__init__(items=items)


class OrderNotPending(OrderError):
    code = "order_not_pending"
    http_status = 409
    shopper_message = _("This order is no longer pending, so it cannot be cancelled.")
    default_message = "Only a pending order can be cancelled."


class OrderNotFound(OrderError):
    code = "not_found"
    http_status = 404
    default_message = "No such order."


class IdempotencyConflict(OrderError):
    code = "idempotency_conflict"
    http_status = 409
    shopper_message = _("Your cart changed while you were checking out. Please review it again.")
    default_message = "This Idempotency-Key was already used for an order with other lines."


class Busy(OrderError):
    code = "busy"
    http_status = 503
    shopper_message = _("The shop is very busy right now. Please wait a moment and press Place order again.")
    default_message = "The shop is busy placing other orders. Please try again in a moment."

    def __init__(self, retry_after: int = 2):
        self.retry_after = retry_after
        super().__init__()


class PlacementFailed(OrderError):
    """An unexpected error inside a placement: its transaction was rolled back, nothing was kept."""

    code = "placement_failed"
    http_status = 500
    shopper_message = _("Your order could not be placed. Nothing was charged; please try again.")
    default_message = "The order could not be placed. Nothing was charged or reserved; please try again."


class TooManyPendingOrders(OrderError):
    """The shopper already has ``ORDER_MAX_PENDING_PER_USER`` unpaid orders holding stock."""

    code = "too_many_pending_orders"
    http_status = 429
    shopper_message = _(
        "You already have unpaid orders waiting. Pay for one or cancel it in My orders, then order again."
    )
    default_message = (
        "You already have %(count)d unpaid orders waiting. Pay for one or cancel it, then order again."
    )

    def __init__(self, *, count: int, retry_after: int):
        self.retry_after = retry_after
        super().__init__(self.default_message % {"count": count}, pending=count)


class OrderNotFinal(OrderError):
    code = "order_not_final"
    http_status = 409
    default_message = "The order has no outcome yet, so there is no email to send."
