"""Payment errors carry a stable code and PayPal's issue, and the API maps them to statuses."""

import pytest

from core.api import exception_handler
from payments.errors import (
    PaymentDeclined,
    PaymentGatewayError,
    PaymentNotApproved,
    PaymentNotRefundable,
    WebhookRejected,
)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (PaymentGatewayError(issue="CONNECTION_ERROR"), 502, "gateway_error"),
        (PaymentDeclined(issue="INSTRUMENT_DECLINED"), 402, "payment_declined"),
        (PaymentNotApproved(issue="ORDER_NOT_APPROVED"), 409, "payment_not_approved"),
        (PaymentNotRefundable(), 409, "payment_not_refundable"),
        (WebhookRejected(), 400, "webhook_rejected"),
    ],
)
def test_api_status_of_each_payment_error(error, status, code):
    response = exception_handler(error, {})
    assert (response.status_code, response.data["code"]) == (status, code)
    assert response.data["message"] == error.message


def test_audit_keeps_paypals_issue():
    error = PaymentDeclined(
        "Declined by the bank.", issue="INSTRUMENT_DECLINED", status_code=422, debug_id="abc"
    )
    assert error.audit() == {
        "error": "payment_declined",
        "issue": "INSTRUMENT_DECLINED",
        "status_code": 422,
        "debug_id": "abc",
        "message": "Declined by the bank.",
    }
