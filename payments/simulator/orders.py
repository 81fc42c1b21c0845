"""Orders: create (with its schema checks), show, the payer's approval and redirects, expiry, and the
control API's snapshot of an order."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import urlencode, urlsplit, urlunsplit

from payments.simulator.answers import Answer, InvalidRequest, malformed_json, not_found, paypal_error
from payments.simulator.ids import new_id, now_iso
from payments.simulator.money import parse_money
from payments.simulator.replay import replayed
from payments.simulator.representation import minimal, order_json
from payments.simulator.store import SimOrder, Store

BREAKDOWN_KEYS = (
    "item_total",
    "tax_total",
    "shipping",
    "handling",
    "insurance",
    "shipping_discount",
    "discount",
)


def with_query(url: str, **params) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


@replayed("create")
def order_create(store: Store, *, body, prefer: str = "") -> Answer:
    if not isinstance(body, dict):
        return malformed_json()
    try:
        order = order_from_request(body)
    except InvalidRequest as error:
        status = 422 if error.detail["issue"] in {"ITEM_TOTAL_MISMATCH", "AMOUNT_MISMATCH"} else 400
        return paypal_error(status, detail=error.detail)
    store.orders[order.id] = order
    representation = order_json(store, order)
    return Answer(201, representation if "return=representation" in prefer else minimal(representation))


def order_from_request(body: dict) -> SimOrder:
    intent = body.get("intent")
    if intent is None:
        raise InvalidRequest("MISSING_REQUIRED_PARAMETER", "/intent")
    if intent not in {"CAPTURE", "AUTHORIZE"}:
        raise InvalidRequest("INVALID_PARAMETER_VALUE", "/intent", intent)
    units = body.get("purchase_units")
    if not isinstance(units, list) or not units:
        raise InvalidRequest("MISSING_REQUIRED_PARAMETER", "/purchase_units")
    purchase_units = [purchase_unit(unit, index) for index, unit in enumerate(units)]

    payment_source = body.get("payment_source") or {}
    paypal = payment_source.get("paypal") if isinstance(payment_source, dict) else None
    experience = (paypal or {}).get("experience_context") or {}
    application_context = body.get("application_context") or {}
    now = now_iso()
    return SimOrder(
        id=new_id(),
        intent=intent,
        status="PAYER_ACTION_REQUIRED" if paypal is not None else "CREATED",
        purchase_units=purchase_units,
        return_url=experience.get("return_url") or application_context.get("return_url") or "",
        cancel_url=experience.get("cancel_url") or application_context.get("cancel_url") or "",
        uses_payment_source=paypal is not None,
        create_time=now,
        update_time=now,
    )


def purchase_unit(unit, index: int) -> dict:
    path = f"/purchase_units/@reference_id=='{index}'"
    if not isinstance(unit, dict):
        raise InvalidRequest("INVALID_PARAMETER_SYNTAX", path)
    amount = unit.get("amount")
    total, currency = parse_money(amount, f"{path}/amount")
    breakdown = amount.get("breakdown") or {}
    items = unit.get("items") or []
    if items:
        if "item_total" not in breakdown:
            raise InvalidRequest("MISSING_REQUIRED_PARAMETER", f"{path}/amount/breakdown/item_total")
        items_sum = Decimal("0")
        for position, item in enumerate(items):
            if not isinstance(item, dict) or not item.get("name"):
                raise InvalidRequest("MISSING_REQUIRED_PARAMETER", f"{path}/items/{position}/name")
            unit_amount, item_currency = parse_money(
                item.get("unit_amount"), f"{path}/items/{position}/unit_amount"
            )
            if item_currency != currency:
                raise InvalidRequest(
                    "CURRENCY_MISMATCH", f"{path}/items/{position}/unit_amount/currency_code"
                )
            quantity = item.get("quantity")
            if not isinstance(quantity, str) or not quantity.isdigit() or int(quantity) < 1:
                raise InvalidRequest(
                    "INVALID_PARAMETER_SYNTAX", f"{path}/items/{position}/quantity", quantity
                )
            items_sum += unit_amount * int(quantity)
    parts = {}
    for key in BREAKDOWN_KEYS:
        if key in breakdown:
            value, part_currency = parse_money(breakdown[key], f"{path}/amount/breakdown/{key}")
            if part_currency != currency:
                raise InvalidRequest("CURRENCY_MISMATCH", f"{path}/amount/breakdown/{key}/currency_code")
            parts[key] = value
    if items and parts["item_total"] != items_sum:
        raise InvalidRequest(
            "ITEM_TOTAL_MISMATCH", f"{path}/amount/breakdown/item_total", parts["item_total"]
        )
    if parts:
        expected = (
            sum(
                (
                    parts.get(key, Decimal("0"))
                    for key in ("item_total", "tax_total", "shipping", "handling", "insurance")
                ),
                Decimal("0"),
            )
            - parts.get("shipping_discount", Decimal("0"))
            - parts.get("discount", Decimal("0"))
        )
        if expected != total:
            raise InvalidRequest("AMOUNT_MISMATCH", f"{path}/amount/value", amount["value"])
    normalized = {
        "reference_id": unit.get("reference_id") or "default",
        "amount": amount,
        "payee": {"email_address": "merchant@shop.example", "merchant_id": "SIMMERCHANT01"},
    }
    for key in ("description", "custom_id", "invoice_id", "soft_descriptor", "items"):
        if unit.get(key):
            normalized[key] = unit[key]
    return normalized


def order_not_found(order_id: str) -> Answer:
    return not_found("order_id", order_id)


def order_get(store: Store, order_id: str) -> Answer:
    with store.lock:
        order = store.orders.get(order_id)
        if order is None or order.expired:
            return order_not_found(order_id)
        return Answer(200, order_json(store, order))


# --- The payer ----------------------------------------------------------------------------------


def order_for_payer(store: Store, order_id: str) -> dict | None:
    """What the approve page shows: the order as PayPal would show it to the payer."""
    with store.lock:
        order = store.orders.get(order_id)
        if order is None or order.expired:
            return None
        return {
            "id": order.id,
            "status": order.status,
            "purchase_units": json.loads(json.dumps(order.purchase_units)),
            "return_url": order.return_url,
            "cancel_url": order.cancel_url,
        }


def approve(store: Store, order_id: str) -> tuple[SimOrder | None, bool]:
    """The payer approves: (order, whether it changed). Approving twice is harmless."""
    with store.lock:
        order = store.orders.get(order_id)
        if order is None:
            return None, False
        if order.expired or order.status not in {"CREATED", "PAYER_ACTION_REQUIRED"}:
            return order, False
        payer_id = new_id(13)
        order.payer = {
            "name": {"given_name": "Sim", "surname": "Buyer"},
            "email_address": f"buyer-{payer_id.lower()}@example.com",
            "payer_id": payer_id,
            "address": {"country_code": "US"},
        }
        order.status = "APPROVED"
        order.update_time = now_iso()
        return order, True


def return_redirect(store: Store, order: SimOrder) -> str:
    payer_id = (order.payer or {}).get("payer_id", "")
    return with_query(order.return_url, token=order.id, PayerID=payer_id) if order.return_url else ""


def cancel_redirect(store: Store, order: SimOrder) -> str:
    return with_query(order.cancel_url, token=order.id) if order.cancel_url else ""


# --- Control (tests and demos) ------------------------------------------------------------------


def expire_order(store: Store, order_id: str) -> SimOrder | None:
    """PayPal lets an order that was never captured expire: from now on it answers 404 for it.
    ``ValueError`` for a captured order (PayPal keeps those)."""
    with store.lock:
        order = store.orders.get(order_id)
        if order is not None:
            if order.capture_ids:
                raise ValueError(f"order {order_id} was captured: it does not expire")
            order.expired = True
        return order


def snapshot(store: Store, order_id: str) -> dict | None:
    with store.lock:
        order = store.orders.get(order_id)
        if order is None:
            return None
        return {
            "order": order_json(store, order),
            "next_capture": order.next_capture,
            "next_capture_amount": order.next_capture_amount,
            "expired": order.expired,
            "capture_calls": order.capture_calls,
            "capture_ids": list(order.capture_ids),
            "return_url": order.return_url,
            "cancel_url": order.cancel_url,
        }
