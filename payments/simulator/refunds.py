"""Refunds of a capture, in part or in full: through the API, or by the merchant from PayPal's dashboard."""

from __future__ import annotations

from decimal import Decimal

from payments.simulator.answers import Answer, InvalidRequest, malformed_json, not_found, paypal_error
from payments.simulator.ids import new_id, now_iso
from payments.simulator.money import fee_breakdown, format_money, parse_money
from payments.simulator.replay import replayed
from payments.simulator.store import Store


@replayed("refund")
def capture_refund(store: Store, capture_id: str, *, body) -> Answer:
    body = body or {}
    if not isinstance(body, dict):
        return malformed_json()
    capture = store.captures.get(capture_id)
    if capture is None:
        return not_found("capture_id", capture_id)
    data = capture.data
    currency = data["amount"]["currency_code"]
    captured = Decimal(data["amount"]["value"])
    remaining = captured - capture.refunded
    if data["status"] == "REFUNDED" or remaining <= 0:
        return paypal_error(422, "CAPTURE_FULLY_REFUNDED")
    if data["status"] not in {"COMPLETED", "PARTIALLY_REFUNDED"}:
        return paypal_error(422, "REFUND_NOT_ALLOWED")
    if body.get("amount") is not None:
        try:
            amount, refund_currency = parse_money(body["amount"], "/amount")
        except InvalidRequest as error:
            return paypal_error(400, detail=error.detail)
        if refund_currency != currency:
            return paypal_error(422, "CURRENCY_MISMATCH")
    else:
        amount = remaining
    if amount > remaining or amount <= 0:
        return paypal_error(422, "REFUND_AMOUNT_EXCEEDED")
    refund_id = new_id()
    now = now_iso()
    money = {"currency_code": currency, "value": format_money(amount, currency)}
    refund = {
        "id": refund_id,
        "amount": money,
        "status": "COMPLETED",
        "seller_payable_breakdown": fee_breakdown(money, "gross_amount", "net_amount"),
        "create_time": now,
        "update_time": now,
        "links": [
            {"href": f"{store.base_url}/v2/payments/refunds/{refund_id}", "rel": "self", "method": "GET"},
            {"href": f"{store.base_url}/v2/payments/captures/{capture_id}", "rel": "up", "method": "GET"},
        ],
    }
    for key in ("invoice_id", "note_to_payer", "custom_id"):
        if body.get(key):
            refund[key] = body[key]
    capture.refunded += amount
    capture.refund_ids.append(refund_id)
    data["status"] = "REFUNDED" if capture.refunded >= captured else "PARTIALLY_REFUNDED"
    data["update_time"] = now
    store.refunds[refund_id] = {"capture_id": capture_id, "data": refund}
    return Answer(201, refund)


def merchant_refund(store: Store, capture_id: str, value: str | None = None) -> Answer:
    """The merchant refunds (part of) a capture from PayPal's dashboard, not through the API."""
    with store.lock:
        capture = store.captures.get(capture_id)
        currency = capture.data["amount"]["currency_code"] if capture else "USD"
    body = {"amount": {"currency_code": currency, "value": value}} if value is not None else {}
    return capture_refund(store, capture_id, body=body, request_id=None)
