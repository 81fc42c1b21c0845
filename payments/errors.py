"""The payment errors, each with a stable ``code`` (mapped to HTTP statuses in ``shop.api``).

Errors raised by the gateway carry what PayPal said: ``issue`` (``details[0].issue``, or a name of
ours such as ``CONNECTION_ERROR``), ``status_code`` and ``debug_id``, so that logs and the payment's
audit trail can quote them.
"""

from shop.errors import ShopError


class PaymentError(ShopError):
    code = "payment_error"
    default_message = "The payment could not be processed."

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
    default_message = "PayPal could not be reached. Please try again in a few minutes."


class PaymentRejected(PaymentError):
    """PayPal answered and refused the request (4xx) for a reason other than those below."""

    code = "payment_rejected"
    default_message = "PayPal refused the payment request."


class PaymentDeclined(PaymentRejected):
    """``INSTRUMENT_DECLINED``: the payer's funding source was declined."""

    code = "payment_declined"
    default_message = "PayPal declined the payment."


class PaymentNotApproved(PaymentRejected):
    """``ORDER_NOT_APPROVED``: the payer has not approved the PayPal order yet."""

    code = "payment_not_approved"
    default_message = "The payment has not been approved at PayPal yet."


class PaymentAlreadyCaptured(PaymentRejected):
    """``ORDER_ALREADY_CAPTURED``: a capture already happened; read the order to know its outcome."""

    code = "payment_already_captured"
    default_message = "The payment was already captured."


class PaymentProviderNotFound(PaymentRejected):
    """PayPal does not know the order or capture (404), e.g. an order that expired at PayPal."""

    code = "payment_provider_not_found"
    default_message = "PayPal does not know this payment."


class PaymentNotFound(PaymentError):
    code = "not_found"
    default_message = "No such payment."


class PaymentNotStarted(PaymentError):
    """The order has no PayPal order yet, so there is nothing to capture."""

    code = "payment_not_started"
    default_message = "The payment of this order was not started at PayPal."


class PaymentNotRefundable(PaymentError):
    code = "payment_not_refundable"
    default_message = "Only a captured payment can be refunded."


class WebhookRejected(PaymentError):
    """A webhook that is not valid JSON, or whose signature PayPal does not confirm: nothing changed."""

    code = "webhook_rejected"
    default_message = "The webhook could not be verified."
