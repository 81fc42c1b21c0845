"""Captures: capturing an approved order (or PayPal's refusal), showing a capture, and the control
API's say over the next capture (its outcome, its amount) and over a capture held for review."""

from __future__ import annotations

from payments.simulator.answers import Answer, InvalidRequest, not_found, paypal_error
from payments.simulator.ids import new_id, now_iso
from payments.simulator.money import fee_breakdown, parse_money
from payments.simulator.replay import replayed
from payments.simulator.representation import approve_url, capture_json, order_json
from payments.simulator.store import SimCapture, SimOrder, Store

# PayPal's refusals of a capture (422 with this issue): nothing is captured, the order stays APPROVED.
CAPTURE_REFUSALS = (
    "INSTRUMENT_DECLINED",
    "TRANSACTION_REFUSED",
    "PAYER_CANNOT_PAY",
    "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED",
    "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING",
    "COMPLIANCE_VIOLATION",
    "PAYER_ACTION_REQUIRED",
    "ORDER_COMPLETION_IN_PROGRESS",
    "DUPLICATE_INVOICE_ID",
)
# What the next capture of an order does: the default, a capture held for review, or a refusal.
CAPTURE_OUTCOMES = ("COMPLETED", "PENDING", *CAPTURE_REFUSALS)


@replayed("capture")
def order_capture(store: Store, order_id: str) -> Answer:
    order = store.orders.get(order_id)
    if order is None or order.expired:
        return not_found("order_id", order_id)
    if order.status == "COMPLETED":
        return paypal_error(422, "ORDER_ALREADY_CAPTURED")
    if order.status != "APPROVED":
        return paypal_error(422, "ORDER_NOT_APPROVED")
    order.capture_calls += 1
    outcome, order.next_capture = order.next_capture, "COMPLETED"
    amount, order.next_capture_amount = order.next_capture_amount, None
    if outcome in CAPTURE_REFUSALS:
        # The order stays APPROVED: PayPal lets the payer pick another funding source.
        return paypal_error(
            422,
            outcome,
            links=[
                {"href": approve_url(store, order.id), "rel": "redirect", "method": "GET"},
                {
                    "href": f"https://developer.paypal.com/docs/api/orders/v2/#error-{outcome}",
                    "rel": "information_link",
                    "method": "GET",
                },
            ],
        )
    _record_captures(store, order, status=outcome, amount=amount)
    return Answer(201, order_json(store, order))


def _record_captures(store: Store, order: SimOrder, *, status: str, amount: dict | None = None) -> None:
    """One capture per purchase unit (of ``amount`` when given); the order is COMPLETED. Under the lock."""
    now = now_iso()
    override = amount
    for unit_index, unit in enumerate(order.purchase_units):
        capture_id = new_id()
        amount = (
            dict(override)
            if override
            else {"currency_code": unit["amount"]["currency_code"], "value": unit["amount"]["value"]}
        )
        data = {
            "id": capture_id,
            "status": status,
            "amount": amount,
            "final_capture": True,
            "seller_protection": {
                "status": "ELIGIBLE",
                "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"],
            },
            "seller_receivable_breakdown": fee_breakdown(amount, "gross_amount", "net_amount"),
            "create_time": now,
            "update_time": now,
        }
        if status == "PENDING":
            data["status_details"] = {"reason": "PENDING_REVIEW"}
        for key in ("invoice_id", "custom_id"):
            if key in unit:
                data[key] = unit[key]
        data["links"] = [
            {"href": f"{store.base_url}/v2/payments/captures/{capture_id}", "rel": "self", "method": "GET"},
            {
                "href": f"{store.base_url}/v2/payments/captures/{capture_id}/refund",
                "rel": "refund",
                "method": "POST",
            },
            {"href": f"{store.base_url}/v2/checkout/orders/{order.id}", "rel": "up", "method": "GET"},
        ]
        store.captures[capture_id] = SimCapture(order_id=order.id, unit_index=unit_index, data=data)
        order.capture_ids.append(capture_id)
    order.status = "COMPLETED"
    order.update_time = now


def capture_not_found(capture_id: str) -> Answer:
    return not_found("capture_id", capture_id)


def capture_get(store: Store, capture_id: str) -> Answer:
    with store.lock:
        capture = store.captures.get(capture_id)
        if capture is None:
            return capture_not_found(capture_id)
        return Answer(200, capture_json(capture))


# --- Control (tests and demos) ------------------------------------------------------------------


def set_next_capture(
    store: Store, order_id: str, outcome: str, amount: dict | None = None
) -> SimOrder | None:
    """What the next capture of the order does; ``amount`` (``{"value", "currency_code"}``) makes
    it capture another amount or currency than the order's, as a faulty integration could."""
    if outcome not in CAPTURE_OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(CAPTURE_OUTCOMES)}")
    if amount is not None:
        try:
            parse_money(amount, "/amount")
        except InvalidRequest as error:
            raise ValueError(f"amount is not PayPal money: {error.detail}") from error
    with store.lock:
        order = store.orders.get(order_id)
        if order is not None:
            order.next_capture = outcome
            order.next_capture_amount = dict(amount) if amount else None
        return order


def capture_now(store: Store, order_id: str) -> Answer:
    """Capture as the merchant would, without an API call: a capture whose answer the shop lost."""
    return order_capture(store, order_id, request_id=None)


def settle_capture(store: Store, capture_id: str, status: str) -> Answer:
    """A capture held for review is released (COMPLETED) or refused (DECLINED)."""
    if status not in {"COMPLETED", "DECLINED"}:
        raise ValueError("status must be COMPLETED or DECLINED")
    with store.lock:
        capture = store.captures.get(capture_id)
        if capture is None:
            return capture_not_found(capture_id)
        if capture.data["status"] != "PENDING":
            return paypal_error(422, "CAPTURE_NOT_PENDING")
        capture.data["status"] = status
        capture.data.pop("status_details", None)
        capture.data["update_time"] = now_iso()
        return Answer(200, capture_json(capture))
