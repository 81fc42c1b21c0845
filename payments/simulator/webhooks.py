"""Webhooks: the event PayPal would send about an order's current state, its signature, and the verify
endpoint.

The signature is an HMAC with the simulator's secret over ``transmission id|time|webhook id|crc32(body)``
(PayPal signs the same string with RSA); the verify endpoint recomputes it over the compact JSON of
``webhook_event``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
import zlib

from payments.simulator.answers import Answer, malformed_json
from payments.simulator.ids import new_id, now_iso
from payments.simulator.representation import capture_json, order_json
from payments.simulator.store import Store

AUTH_ALGO = "SHA256withRSA"
WEBHOOK_EVENT_TYPES = (
    "CHECKOUT.ORDER.APPROVED",
    "PAYMENT.CAPTURE.COMPLETED",
    "PAYMENT.CAPTURE.DENIED",
    "PAYMENT.CAPTURE.REFUNDED",
)


def canonical_json(value) -> bytes:
    """The bytes the simulator sends as a webhook body, and recomputes when asked to verify one."""
    return json.dumps(value, separators=(",", ":")).encode()


def webhook_event(store: Store, order_id: str, event_type: str) -> dict:
    """A webhook event about the order's current state. ``LookupError`` when there is nothing to
    tell (unknown order, no capture yet, a capture in another state, no refund)."""
    if event_type not in WEBHOOK_EVENT_TYPES:
        raise ValueError(f"event_type must be one of {', '.join(WEBHOOK_EVENT_TYPES)}")
    with store.lock:
        order = store.orders.get(order_id)
        if order is None or order.expired:
            raise LookupError(f"no order {order_id}")
        if event_type == "CHECKOUT.ORDER.APPROVED":
            if order.status != "APPROVED":
                raise LookupError(f"order {order_id} is {order.status}, not APPROVED")
            resource_type, resource = "checkout-order", order_json(store, order)
            summary = "An order has been approved by buyer"
        elif event_type == "PAYMENT.CAPTURE.REFUNDED":
            refund_ids = [rid for cid in order.capture_ids for rid in store.captures[cid].refund_ids]
            if not refund_ids:
                raise LookupError(f"order {order_id} has no refund")
            refund = store.refunds[refund_ids[-1]]
            resource_type, resource = "refund", json.loads(json.dumps(refund["data"]))
            resource["supplementary_data"] = {
                "related_ids": {"order_id": order.id, "capture_id": refund["capture_id"]}
            }
            amount = resource["amount"]
            summary = f"A {amount['value']} {amount['currency_code']} capture payment was refunded"
        else:
            wanted = "COMPLETED" if event_type == "PAYMENT.CAPTURE.COMPLETED" else "DECLINED"
            if not order.capture_ids:
                raise LookupError(f"order {order_id} has no capture")
            capture = store.captures[order.capture_ids[-1]]
            if capture.data["status"] not in (
                {wanted, "REFUNDED", "PARTIALLY_REFUNDED"} if wanted == "COMPLETED" else {wanted}
            ):
                raise LookupError(f"the capture of order {order_id} is {capture.data['status']}")
            resource_type, resource = "capture", capture_json(capture)
            resource["status"] = wanted
            resource["supplementary_data"] = {"related_ids": {"order_id": order.id}}
            amount = resource["amount"]
            summary = (
                f"Payment completed for {amount['value']} {amount['currency_code']}"
                if wanted == "COMPLETED"
                else f"A {amount['value']} {amount['currency_code']} capture payment was denied"
            )
    event_id = f"WH-{new_id()}-{new_id()}"
    events_url = f"{store.base_url}/v1/notifications/webhooks-events/{event_id}"
    return {
        "id": event_id,
        "event_version": "1.0",
        "create_time": now_iso(),
        "resource_type": resource_type,
        "resource_version": "2.0",
        "event_type": event_type,
        "summary": summary,
        "resource": resource,
        "links": [
            {"href": events_url, "rel": "self", "method": "GET"},
            {"href": f"{events_url}/resend", "rel": "resend", "method": "POST"},
        ],
    }


def webhook_signature(
    store: Store, *, transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
) -> str:
    message = f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body)}".encode()
    return base64.b64encode(hmac.new(store.webhook_secret, message, hashlib.sha256).digest()).decode()


def webhook_sign(store: Store, event: dict) -> tuple[bytes, dict[str, str]]:
    """The body and the headers PayPal would send for ``event`` (a new transmission each time)."""
    body = canonical_json(event)
    transmission_id = str(uuid.uuid4())
    transmission_time = now_iso()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "PayPal/AUHD-214.0-58843723",
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-TIME": transmission_time,
        "PAYPAL-TRANSMISSION-SIG": webhook_signature(
            store,
            transmission_id=transmission_id,
            transmission_time=transmission_time,
            webhook_id=store.webhook_id,
            body=body,
        ),
        "PAYPAL-AUTH-ALGO": AUTH_ALGO,
        "PAYPAL-CERT-URL": f"{store.base_url}/v1/notifications/certs/CERT-SIMULATOR",
    }
    with store.lock:
        store.webhooks[event["id"]] = body
    return body, headers


def webhook_body(store: Store, event_id: str) -> bytes | None:
    with store.lock:
        return store.webhooks.get(event_id)


def verify_webhook_signature(store: Store, body) -> Answer:
    required = (
        "auth_algo",
        "cert_url",
        "transmission_id",
        "transmission_sig",
        "transmission_time",
        "webhook_id",
        "webhook_event",
    )
    if not isinstance(body, dict):
        return malformed_json()
    for key in required:
        if not body.get(key):
            return Answer(
                400,
                {
                    "name": "VALIDATION_ERROR",
                    "message": "Invalid request - see details",
                    "debug_id": new_id(13).lower(),
                    "details": [{"field": key, "location": "body", "issue": "MISSING_REQUIRED_PARAMETER"}],
                },
            )
    expected = webhook_signature(
        store,
        transmission_id=str(body["transmission_id"]),
        transmission_time=str(body["transmission_time"]),
        webhook_id=str(body["webhook_id"]),
        body=canonical_json(body["webhook_event"]),
    )
    verified = (
        body["auth_algo"] == AUTH_ALGO
        and str(body["cert_url"]).startswith(f"{store.base_url}/v1/notifications/certs/")
        and hmac.compare_digest(expected, str(body["transmission_sig"]))
    )
    return Answer(200, {"verification_status": "SUCCESS" if verified else "FAILURE"})
