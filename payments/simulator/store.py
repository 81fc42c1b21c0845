"""The simulator's PayPal in memory: its settings, its orders, captures, refunds, replays, fault plans,
signed webhooks and request log, all behind one re-entrant lock.

The job modules (``auth``, ``orders``, ``captures``, ``refunds``, ``webhooks``, ``faults``, ``replay``)
are functions of a ``Store``; ``state.SimulatorState`` is a ``Store`` with them as its methods.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from decimal import Decimal

from payments.simulator.answers import Answer
from payments.simulator.faults import FailurePlan


@dataclass
class SimOrder:
    id: str
    intent: str
    status: str
    purchase_units: list[dict]
    return_url: str
    cancel_url: str
    uses_payment_source: bool
    create_time: str
    update_time: str
    payer: dict | None = None
    next_capture: str = "COMPLETED"
    next_capture_amount: dict | None = None  # another amount for the next capture than the order's
    capture_ids: list[str] = field(default_factory=list)
    capture_calls: int = 0  # capture requests processed (replays not counted)
    expired: bool = False  # PayPal let the order expire before it was captured: it is gone


@dataclass
class SimCapture:
    order_id: str
    unit_index: int
    data: dict
    refund_ids: list[str] = field(default_factory=list)
    refunded: Decimal = Decimal("0")


class Store:
    """All of the simulator's PayPal, behind one lock."""

    def __init__(
        self,
        *,
        base_url: str = "http://127.0.0.1:8001",
        public_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        webhook_id: str = "simulator-webhook",
        webhook_secret: str | None = None,
        webhook_url: str | None = None,
    ):
        self.lock = threading.RLock()
        self.base_url = base_url.rstrip("/")
        # Where the payer's browser reaches the approve page, when not at base_url (a simulator that
        # listens on 0.0.0.0 in a container, published on the host's localhost).
        self.public_url = (public_url or base_url).rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.webhook_id = webhook_id
        self.webhook_secret = (webhook_secret or secrets.token_hex(32)).encode()
        self.webhook_url = webhook_url
        # Tokens survive ``reset()``: a client keeps its token across tests, as it would against PayPal.
        self.tokens: set[str] = set()
        self.holding: list[FailurePlan] = []
        self.reset()

    def reset(self) -> None:
        with self.lock:
            for plan in self.holding:
                plan.release.set()
            self.holding = []
            self.orders: dict[str, SimOrder] = {}
            self.captures: dict[str, SimCapture] = {}
            self.refunds: dict[str, dict] = {}
            self.replays: dict[tuple[str, str, str], Answer] = {}
            self.failures: list[FailurePlan] = []
            self.webhooks: dict[str, bytes] = {}
            self.requests: list[dict] = []

    def log_request(self, entry: dict) -> None:
        with self.lock:
            self.requests.append(entry)
