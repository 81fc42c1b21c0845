"""The simulator's PayPal: the Orders v2 subset the shop uses, over an in-memory, thread-safe state.

Every public method returns an ``Answer`` (status, JSON body, headers) shaped like PayPal's: the
HTTP layer in ``server.py`` only parses requests and writes answers. Nothing here imports Django, so
the simulator runs as its own process (``manage.py run_paypal_simulator``) or in a test's thread.

``SimulatorState`` is the one object the server and the tests hold: the in-memory ``Store`` with the
functions of each job's module as its methods. The jobs, each in its own module:

- ``auth``: OAuth client credentials and the bearer token check;
- ``faults``: fault injection (status, disconnect, lost answer, delay, hold until released);
- ``orders``: create (schema checks), show, the payer's approval and redirects, expiry, snapshots;
- ``captures``: capture, show a capture, the next capture's outcome, settling a capture held for review;
- ``refunds``: refunds through the API and from the merchant's dashboard;
- ``webhooks``: events, their signatures and the verify endpoint;
- ``replay``: ``PayPal-Request-Id`` replay of create, capture and refund, as one decorator;
- below them ``representation`` (the JSON of an order and a capture), ``store`` (the data and its
  lock), ``money``, ``answers`` (``Answer`` and PayPal's error bodies) and ``ids``.

What it does like PayPal (checked against the Orders v2 reference):

- create answers 201, and 200 with the first answer when the ``PayPal-Request-Id`` is replayed;
  with ``payment_source.paypal.experience_context`` the order is ``PAYER_ACTION_REQUIRED`` and its
  links carry ``payer-action``; ``approve`` is there too, for clients written against the contract;
- capture answers 201 with ``purchase_units[].payments.captures[]``; 422 ``ORDER_NOT_APPROVED``,
  ``ORDER_ALREADY_CAPTURED``, ``INSTRUMENT_DECLINED``; replay by ``PayPal-Request-Id``;
- errors have PayPal's body: ``{name, message, debug_id, details: [{issue, description}], links}``;
  OAuth errors have the OAuth body ``{error, error_description}``;
- only successful answers are kept for replay, so a retry after an error is processed afresh.

What it does differently: webhook signatures are an HMAC with the simulator's secret over
``transmission id|time|webhook id|crc32(body)`` (PayPal signs the same string with RSA); the verify
endpoint recomputes it over the compact JSON of ``webhook_event``.
"""

from __future__ import annotations

from payments.simulator import auth, captures, faults, orders, refunds, webhooks
from payments.simulator.answers import Answer, paypal_error
from payments.simulator.captures import CAPTURE_OUTCOMES, CAPTURE_REFUSALS
from payments.simulator.faults import FAILURE_MODES, FailurePlan
from payments.simulator.store import SimCapture, SimOrder, Store
from payments.simulator.webhooks import WEBHOOK_EVENT_TYPES

__all__ = [
    "CAPTURE_OUTCOMES",
    "CAPTURE_REFUSALS",
    "FAILURE_MODES",
    "WEBHOOK_EVENT_TYPES",
    "Answer",
    "FailurePlan",
    "SimCapture",
    "SimOrder",
    "SimulatorState",
    "paypal_error",
]


class SimulatorState(Store):
    """All of the simulator's PayPal, behind one lock: the store, with each job's functions as methods
    (each takes the store first, so it binds as a method here)."""

    # OAuth
    token = auth.token
    authenticate = auth.authenticate

    # Fault injection
    add_failure = faults.add_failure
    take_failure = faults.take_failure
    hold = faults.hold
    held = faults.held
    release_held = faults.release_held

    # Orders and the payer
    order_create = orders.order_create
    order_get = orders.order_get
    order_for_payer = orders.order_for_payer
    approve = orders.approve
    return_redirect = orders.return_redirect
    cancel_redirect = orders.cancel_redirect
    expire_order = orders.expire_order
    snapshot = orders.snapshot

    # Captures
    order_capture = captures.order_capture
    capture_get = captures.capture_get
    set_next_capture = captures.set_next_capture
    capture_now = captures.capture_now
    settle_capture = captures.settle_capture

    # Refunds
    capture_refund = refunds.capture_refund
    merchant_refund = refunds.merchant_refund

    # Webhooks
    webhook_event = webhooks.webhook_event
    webhook_signature = webhooks.webhook_signature
    webhook_sign = webhooks.webhook_sign
    webhook_body = webhooks.webhook_body
    verify_webhook_signature = webhooks.verify_webhook_signature
