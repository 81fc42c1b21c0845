"""The JSON PayPal answers with for an order (full, or minimal) and a capture: copies, never the store's
own dicts, so an answer cannot change the state it was made from."""

from __future__ import annotations

import json

from payments.simulator.store import SimCapture, SimOrder, Store


def approve_url(store: Store, order_id: str) -> str:
    return f"{store.public_url}/checkoutnow?token={order_id}"


def capture_json(capture: SimCapture) -> dict:
    return json.loads(json.dumps(capture.data))


def order_json(store: Store, order: SimOrder) -> dict:
    units = []
    for unit_index, unit in enumerate(order.purchase_units):
        copy = json.loads(json.dumps(unit))
        unit_captures = [
            store.captures[capture_id]
            for capture_id in order.capture_ids
            if store.captures[capture_id].unit_index == unit_index
        ]
        if unit_captures:
            captures = [capture_json(capture) for capture in unit_captures]
            refunds = [
                store.refunds[refund_id]["data"]
                for capture in unit_captures
                for refund_id in capture.refund_ids
            ]
            copy["payments"] = {"captures": captures}
            if refunds:
                copy["payments"]["refunds"] = json.loads(json.dumps(refunds))
        units.append(copy)
    body = {
        "id": order.id,
        "intent": order.intent,
        "status": order.status,
        "purchase_units": units,
        "create_time": order.create_time,
        "update_time": order.update_time,
    }
    if order.uses_payment_source:
        paypal = {}
        if order.payer is not None:
            paypal = {
                "email_address": order.payer["email_address"],
                "account_id": order.payer["payer_id"],
                "account_status": "VERIFIED",
                "name": order.payer["name"],
                "address": order.payer["address"],
            }
        body["payment_source"] = {"paypal": paypal}
    if order.payer is not None:
        body["payer"] = order.payer
    order_url = f"{store.base_url}/v2/checkout/orders/{order.id}"
    links = [{"href": order_url, "rel": "self", "method": "GET"}]
    if order.status in {"CREATED", "PAYER_ACTION_REQUIRED"}:
        if order.uses_payment_source:
            links.append({"href": approve_url(store, order.id), "rel": "payer-action", "method": "GET"})
        links.append({"href": approve_url(store, order.id), "rel": "approve", "method": "GET"})
    if order.status in {"CREATED", "PAYER_ACTION_REQUIRED", "APPROVED"}:
        links.append({"href": order_url, "rel": "update", "method": "PATCH"})
    if order.status == "APPROVED":
        links.append({"href": f"{order_url}/capture", "rel": "capture", "method": "POST"})
    body["links"] = links
    return body


def minimal(representation: dict) -> dict:
    """What ``Prefer: return=minimal`` (PayPal's default) keeps of an order."""
    keys = ("id", "status", "payment_source", "links")
    return {key: representation[key] for key in keys if key in representation}
