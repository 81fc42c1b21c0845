"""What the shopper reads about a failed order, per failure reason: one table for the order page, the
API's readers and the outcome email (which carries these sentences in its message, in the shopper's
language, so that the email consumer needs no table of its own)."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from orders.models import FailureReason


@dataclass(frozen=True)
class ReasonText:
    happened: Promise  # what went wrong
    next_email: Promise  # what the shopper can do next, in the email
    next_page: Promise  # the same, on the order's page (which has the order and its buttons at hand)
    charged: bool = False  # PayPal did take money for it (it is refunded): never "Nothing was charged"


REASONS: dict[str, ReasonText] = {
    FailureReason.PAYMENT_DECLINED: ReasonText(
        _("Your payment was declined."),
        _(
            "You can place the order again and pay with another card or "
            "PayPal funding source, or ask your bank why the payment was refused."
        ),
        _("Nothing was charged. Try again with another payment method in PayPal."),
    ),
    FailureReason.PAYMENT_CANCELLED: ReasonText(
        _("The payment was cancelled at PayPal."),
        _("If you still want these products, place the order again."),
        _("Nothing was charged and the items went back on sale. You can order them again."),
    ),
    FailureReason.RESERVATION_EXPIRED: ReasonText(
        _("The order was not paid in time, so the products we were holding for you went back on sale."),
        _("You can place the order again while the products are in stock."),
        _(
            "The payment was not completed in time, so nothing was charged and the items went back "
            "on sale. You can order them again."
        ),
    ),
    FailureReason.GATEWAY_ERROR: ReasonText(
        _("We could not reach PayPal to complete your payment."),
        _("Please try again in a few minutes; if it keeps failing, reply to this email and we will help."),
        _("Nothing was charged. Please try again in a few minutes."),
    ),
    FailureReason.CANCELLED_BY_SHOPPER: ReasonText(
        _("You cancelled the order."),
        _("You can place a new order at any time."),
        _("Nothing was charged and the items went back on sale."),
    ),
    FailureReason.CANCELLED_BY_STAFF: ReasonText(
        _("We cancelled the order: we could not complete it."),
        _(
            "Nothing was charged. If you still want these products, place the order again, or reply "
            "to this email and we will help."
        ),
        _("The shop cancelled this order. Nothing was charged; you can order the items again."),
    ),
    FailureReason.AMOUNT_MISMATCH: ReasonText(
        _("PayPal charged an amount that differs from your order's total, so we could not take the payment."),
        _("The whole payment goes back to your PayPal account. You can place the order again."),
        _("The payment is being refunded to your PayPal account. You can place a new order at any time."),
        charged=True,
    ),
}
UNKNOWN_REASON = ReasonText(
    _("The order could not be completed."),
    _("Please place the order again, or reply to this email if you need help."),
    _("Nothing was charged. You can place a new order at any time."),
)

REFUNDED_TEXT = _(
    "A payment for this order reached us after the order had been closed; we refunded it in full. "
    "Depending on your bank, the refund can take a few days to appear."
)
# For a failure where PayPal did take the money (``charged``), once it is refunded.
CHARGED_REFUNDED_TEXT = _(
    "We refunded that payment in full. Depending on your bank, the refund can take a few days to appear."
)
NOT_CHARGED_TEXT = _("Nothing was charged.")


def reason_text(code: str | None) -> ReasonText:
    return REASONS.get(code, UNKNOWN_REASON)


def refunded_text(code: str | None) -> Promise:
    """What the shopper reads about a refund of the order's payment."""
    return CHARGED_REFUNDED_TEXT if reason_text(code).charged else REFUNDED_TEXT


def not_charged_text(code: str | None) -> Promise | str:
    """ "Nothing was charged", unless PayPal did take money for this failure (it is refunded)."""
    return "" if reason_text(code).charged else NOT_CHARGED_TEXT
