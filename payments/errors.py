"""The payment errors, each with a stable ``code`` (mapped to HTTP statuses in ``shop.api``).

Errors raised by the gateway carry what PayPal said: ``issue`` (``details[0].issue``, or a name of
ours such as ``CONNECTION_ERROR``), ``status_code`` and ``debug_id``, so that logs and the payment's
audit trail can quote them. ``payments.gateway.ISSUE_ERRORS`` says which PayPal issue becomes which
error.

``final`` says what an error means for the order it was about: a final refusal would be refused
again (the payer's funding was refused, PayPal no longer knows the order, the request itself is
wrong), so the order is settled at once; anything else (PayPal unreachable, failing or busy, the
payer still has to act) leaves the order PENDING for a later try, and no later than
``reserved_until + PAYPAL_SETTLE_GRACE_SECONDS`` the order is failed whatever PayPal answers.
"""

from django.utils.translation import gettext_lazy as _

from core.errors import ShopError


class PaymentError(ShopError):
    code = "payment_error"
    default_message = "The payment could not be processed."
    final = False  # PayPal refused for good: see the module's docstring

    def __init__(
        self,
        message=None,
        *,
        issue: str = "",
        status_code: int | None = None,
        debug_id: str = "",
        response: dict | None = None,
        **data,
    ):
        self.issue = issue
        self.status_code = status_code
        self.debug_id = debug_id
        self.response = response
        super().__init__(message, **data)

    def audit(self) -> dict:
        """What to keep in ``Payment.provider_responses`` about this error."""
        return {
            "error": self.code,
            "issue": self.issue,
            "status_code": self.status_code,
            "debug_id": self.debug_id,
            "message": self.message,
            **({"response": self.response} if self.response is not None else {}),
        }


class PaymentGatewayError(PaymentError):
    """PayPal could not be reached, timed out, failed (5xx) or refused our credentials: nothing is
    known about the outcome of the call."""

    code = "gateway_error"
    http_status = 502
    shopper_message = _(
        "PayPal could not be reached, so your order was cancelled and nothing was charged. "
        "Please try again in a few minutes."
    )
    default_message = "PayPal could not be reached. Please try again in a few minutes."


class PaymentRejected(PaymentError):
    """PayPal answered and refused the request (4xx) for a reason other than those below, including
    issue names we do not know: the same request would be refused again."""

    code = "payment_rejected"
    http_status = 502
    default_message = "PayPal refused the payment request."
    final = True


class PaymentDeclined(PaymentRejected):
    """The payer's funding was refused (``INSTRUMENT_DECLINED``, ``TRANSACTION_REFUSED``,
    ``PAYER_CANNOT_PAY``, ...)."""

    code = "payment_declined"
    http_status = 402
    default_message = "PayPal declined the payment."


class PaymentNotApproved(PaymentRejected):
    """``ORDER_NOT_APPROVED``: the payer has not approved the PayPal order yet."""

    code = "payment_not_approved"
    http_status = 409
    default_message = "The payment has not been approved at PayPal yet."
    final = False  # the payer may still approve, until the order's hold expires


class PaymentAlreadyCaptured(PaymentRejected):
    """``ORDER_ALREADY_CAPTURED``: a capture already happened; read the order to know its outcome."""

    code = "payment_already_captured"
    http_status = 409
    default_message = "The payment was already captured."
    final = False  # not a refusal: the order's captures tell the outcome


class PaymentAlreadyRefunded(PaymentRejected):
    """``CAPTURE_FULLY_REFUNDED``: the capture's money is already back with the payer."""

    code = "payment_already_refunded"
    http_status = 409
    default_message = "The payment was already refunded."


class PaymentProviderNotFound(PaymentRejected):
    """PayPal does not know the order or capture (404, ``RESOURCE_NOT_FOUND``, ``ORDER_EXPIRED``),
    e.g. an order that expired at PayPal: nothing can be captured any more."""

    code = "payment_provider_not_found"
    http_status = 502
    default_message = "PayPal does not know this payment."


class PaymentNotFound(PaymentError):
    code = "payment_not_found"
    http_status = 404
    default_message = "No such payment."


class PaymentNotStarted(PaymentError):
    """The order has no PayPal order yet, so there is nothing to capture."""

    code = "payment_not_started"
    http_status = 409
    default_message = "The payment of this order was not started at PayPal."


class PaymentNotRefundable(PaymentError):
    code = "payment_not_refundable"
    http_status = 409
    default_message = "Only a captured payment can be refunded."


class WebhookRejected(PaymentError):
    """A webhook that is not valid JSON, or whose signature PayPal does not confirm: nothing changed."""

    code = "webhook_rejected"
    default_message = "The webhook could not be verified."
