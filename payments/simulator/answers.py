"""What every endpoint hands back: an ``Answer`` (status, JSON body, headers), with PayPal's error bodies.

Errors have PayPal's body: ``{name, message, debug_id, details: [{issue, description}], links}``;
``InvalidRequest`` is a request body that breaks the schema, answered 400 ``INVALID_REQUEST``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from payments.simulator.ids import new_id

ERROR_NAMES = {
    400: ("INVALID_REQUEST", "Request is not well-formed, syntactically incorrect, or violates schema."),
    401: (
        "AUTHENTICATION_FAILURE",
        "Authentication failed due to invalid authentication credentials or a missing Authorization "
        "parameter.",
    ),
    404: ("RESOURCE_NOT_FOUND", "The specified resource does not exist."),
    422: (
        "UNPROCESSABLE_ENTITY",
        "The requested action could not be performed, semantically incorrect, or failed business validation.",
    ),
    500: ("INTERNAL_SERVER_ERROR", "An internal server error has occurred."),
    503: ("SERVICE_UNAVAILABLE", "Service Unavailable."),
}

ISSUE_DESCRIPTIONS = {
    "ORDER_NOT_APPROVED": (
        "Payer has not yet approved the Order for payment. Please redirect the payer to the 'rel':'approve' "
        "url returned as part of the HATEOAS links within the Create Order call or provide a valid "
        "payment_source in the request."
    ),
    "ORDER_ALREADY_CAPTURED": (
        "Order already captured.If 'intent=CAPTURE' only one capture per order is allowed."
    ),
    "INSTRUMENT_DECLINED": (
        "The instrument presented  was either declined by the processor or bank, or it can't be used for "
        "this payment."
    ),
    "INVALID_RESOURCE_ID": (
        "Specified resource ID does not exist. Please check the resource ID and try again."
    ),
    "MALFORMED_REQUEST_JSON": "The request JSON is not well formed.",
    "MISSING_REQUIRED_PARAMETER": "A required field / parameter is missing.",
    "INVALID_PARAMETER_VALUE": "The value of a field is invalid.",
    "INVALID_PARAMETER_SYNTAX": "The value of a field does not conform to the expected format.",
    "ITEM_TOTAL_MISMATCH": (
        "Should equal sum of (unit_amount * quantity) across all items for a given purchase_unit"
    ),
    "AMOUNT_MISMATCH": (
        "Should equal item_total + tax_total + shipping + handling + insurance - shipping_discount "
        "- discount."
    ),
    "CURRENCY_MISMATCH": "Currency code should be the same for all amounts in a purchase unit.",
    "CAPTURE_FULLY_REFUNDED": "The capture has already been fully refunded",
    "REFUND_AMOUNT_EXCEEDED": (
        "The refund amount must be less than or equal to the capture amount that has not yet been refunded."
    ),
    "REFUND_NOT_ALLOWED": "The capture is not completed, so it cannot be refunded.",
    "TRANSACTION_REFUSED": "The request was refused.",
    "PAYER_CANNOT_PAY": (
        "Combination of payer and payee settings mean that this buyer cannot pay this seller."
    ),
    "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED": ("You have exceeded the maximum number of payment attempts."),
    "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING": (
        "Transaction failed. Redirect the payer to select another funding source."
    ),
    "COMPLIANCE_VIOLATION": "Transaction cannot be processed due to a possible compliance violation.",
    "PAYER_ACTION_REQUIRED": (
        "Transaction cannot complete successfully, instruct the buyer to return to the previous page."
    ),
    "ORDER_COMPLETION_IN_PROGRESS": (
        "The order is being completed by an earlier request. Please try again later."
    ),
    "DUPLICATE_INVOICE_ID": "Duplicate Invoice ID detected. To avoid a potential duplicate transaction.",
    "CAPTURE_NOT_PENDING": "Only a capture held for review can be settled.",
}


@dataclass
class Answer:
    status: int
    body: dict | list | None = None
    headers: dict[str, str] = field(default_factory=dict)


class InvalidRequest(Exception):
    """A request body that breaks the schema: answered 400 INVALID_REQUEST with this detail."""

    def __init__(self, issue: str, field_path: str, value=None, location: str = "body"):
        super().__init__(issue)
        self.detail = {"field": field_path, "location": location, "issue": issue}
        if value is not None:
            self.detail["value"] = str(value)
        self.detail["description"] = ISSUE_DESCRIPTIONS.get(issue, issue)


def paypal_error(status: int, issue: str | None = None, *, detail: dict | None = None, links=None) -> Answer:
    name, message = ERROR_NAMES.get(status, ERROR_NAMES[500])
    body: dict = {"name": name, "message": message, "debug_id": new_id(13).lower()}
    if detail is None and issue is not None:
        detail = {"issue": issue, "description": ISSUE_DESCRIPTIONS.get(issue, issue)}
    if detail is not None:
        body["details"] = [detail]
        issue = detail["issue"]
    body["links"] = links or (
        [
            {
                "href": f"https://developer.paypal.com/docs/api/orders/v2/#error-{issue}",
                "rel": "information_link",
                "method": "GET",
            }
        ]
        if issue
        else []
    )
    return Answer(status, body)


def malformed_json() -> Answer:
    return paypal_error(400, detail=InvalidRequest("MALFORMED_REQUEST_JSON", "/").detail)


def not_found(field_name: str, resource_id: str) -> Answer:
    """404 ``INVALID_RESOURCE_ID`` for the id in the path (``order_id``, ``capture_id``)."""
    return paypal_error(
        404,
        detail={
            "field": field_name,
            "value": resource_id,
            "location": "path",
            "issue": "INVALID_RESOURCE_ID",
            "description": ISSUE_DESCRIPTIONS["INVALID_RESOURCE_ID"],
        },
    )
