"""What the simulator's PayPal holds for one PayPal order, read from the simulator's own state (the
``paypal`` fixture serves it in this process): the test's view of where the money is, independent of
what the shop recorded."""

from decimal import Decimal

from payments.webhooks import payment_handle_webhook

MONEY_TAKEN = {"COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"}


def paypal_payments(paypal, provider_order_id: str) -> dict:
    """``{"captures": [...], "refunds": [...]}`` of the PayPal order (empty lists when none)."""
    snapshot = paypal.server.state.snapshot(provider_order_id)
    payments = {"captures": [], "refunds": []}
    for unit in snapshot["order"]["purchase_units"]:
        for kind in payments:
            payments[kind].extend((unit.get("payments") or {}).get(kind) or [])
    return payments


def money_kept(paypal, provider_order_id: str) -> Decimal:
    """What PayPal took from the payer for this order and has not given back."""
    return kept_of(paypal_payments(paypal, provider_order_id))


def kept_of(payments: dict) -> Decimal:
    """``money_kept`` of what ``paypal_payments`` answered."""
    taken = sum(
        (Decimal(c["amount"]["value"]) for c in payments["captures"] if c["status"] in MONEY_TAKEN),
        Decimal("0"),
    )
    given_back = sum(
        (Decimal(r["amount"]["value"]) for r in payments["refunds"] if r["status"] == "COMPLETED"),
        Decimal("0"),
    )
    return taken - given_back


def capture_statuses(paypal, provider_order_id: str) -> list[str]:
    return [capture["status"] for capture in paypal_payments(paypal, provider_order_id)["captures"]]


def deliver_webhook(paypal, provider_order_id: str, event_type: str):
    """Have the simulator sign an event about the order's present state, and hand it to the shop's
    webhook service as the view would (the signature is verified with the simulator over HTTP)."""
    signed = paypal.webhook(provider_order_id, event_type)
    return payment_handle_webhook(headers=signed["headers"], body=signed["body"].encode())
