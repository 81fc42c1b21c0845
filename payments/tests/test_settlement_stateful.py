"""Random sequences of checkout and PayPal events (issue 11): placement, approval, captures with lost
answers, PayPal refusals of every kind and failures, captures held for review or of another amount,
PayPal letting orders expire, webhooks, dashboard and staff refunds, cancels, clock jumps and sweeps,
through the real SDK against the simulator. After every step:

- no order is PENDING past ``reserved_until + PAYPAL_SETTLE_GRACE_SECONDS`` once a sweep ran then;
- no FAILED order keeps money at PayPal (captured and not refunded, by the simulator's own state)
  unless its payment is flagged for the sweep to check PayPal again; and a sweep that PayPal
  answers leaves no money kept for a failed order at all;
- no SUCCESS order lacks a capture of its payment's amount at PayPal;
- the stock and order invariants of DESIGN.md.

A timeout is modelled by what it leaves behind, deterministically: PayPal acted and the answer was
lost (``drop_response``), or nothing arrived (``disconnect``). A real timeout leaves the request
running at PayPal after the step is over, and the simulator's state would race the checks.

One rule draws the next action (weighted by repetition), rather than one rule per action: with few
examples, Hypothesis' swarm testing of rules would spend most of them on one or two kinds of step.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from checkout.services import checkout_place
from inventory.models import ReservedStock
from inventory.tests.factories import ProductFactory
from orders.errors import OrderNotPending, OutOfStock
from orders.models import Order, OrderStatus
from orders.services import order_cancel
from orders.tests.factories import UserFactory
from orders.tests.invariants import assert_invariants
from payments.errors import PaymentError
from payments.expiry import payment_expire_overdue
from payments.models import PaymentStatus
from payments.services import payment_capture, payment_refund, payment_start
from payments.simulator.client import SimulatorControlError
from payments.simulator.state import CAPTURE_REFUSALS, WEBHOOK_EVENT_TYPES
from payments.tests.at_paypal import MONEY_TAKEN, deliver_webhook, kept_of, money_kept, paypal_payments

GRACE_SECONDS = 600

# What PayPal's capture does: half the time a plain completed capture, else any of the odd cases.
CAPTURE_OUTCOMES = st.one_of(
    st.just("COMPLETED"),
    st.just("COMPLETED"),
    st.sampled_from(["PENDING", "OTHER_AMOUNT", "OTHER_CURRENCY"]),
    st.sampled_from(CAPTURE_REFUSALS),
)
MOSTLY = st.sampled_from([True, True, False])
TROUBLE = st.sampled_from(
    [
        {"mode": "status", "status": 500},
        {"mode": "status", "status": 503},
        {"mode": "status", "status": 429},
        {"mode": "status", "status": 422},  # a refusal whose name nobody foresaw
        {"mode": "disconnect"},
        {"mode": "drop_response"},
    ]
)
TROUBLE_PATHS = st.sampled_from(
    ["", "/capture", "/v2/checkout/orders/", "/refund", "/verify-webhook-signature"]
)
PAYPAL_EVENTS = st.one_of(
    st.sampled_from(WEBHOOK_EVENT_TYPES),
    st.sampled_from(["release held capture", "decline held capture", "order expires"]),
    st.sampled_from(["refund part", "refund all"]),
)
ACTIONS = [
    *["place_and_start"] * 2,
    *["shopper_pays"] * 4,
    "shopper_or_staff_acts",
    *["paypal_acts"] * 2,
    "paypal_fails",
    *["time_passes"] * 3,
]


class PayPalCheckout(RuleBasedStateMachine):
    def __init__(self, paypal):
        super().__init__()
        self.paypal = paypal
        paypal.reset()
        # Each example works in a savepoint of the test's transaction, rolled back at its end.
        self.example = transaction.atomic()
        self.example.__enter__()
        self.order_ids: list[int] = []
        self.swept_at = None  # when the last sweep started, on the clock of the rows

    def teardown(self):
        self.paypal.server.state.failures.clear()
        transaction.set_rollback(True)
        self.example.__exit__(None, None, None)

    @initialize(
        on_hand=st.lists(st.integers(min_value=2, max_value=5), min_size=2, max_size=2), data=st.data()
    )
    def open_the_shop(self, on_hand, data):
        prices = [Decimal("10.00"), Decimal("7.50")]
        self.products = [ProductFactory(on_hand=n, price=p) for n, p in zip(on_hand, prices, strict=True)]
        self.initial = {product.pk: n for product, n in zip(self.products, on_hand, strict=True)}
        self.users = [UserFactory(), UserFactory()]
        self.place_and_start(data)
        self.place_and_start(data)

    @rule(action=st.sampled_from(ACTIONS), data=st.data())
    def step(self, action, data):
        getattr(self, action)(data)

    # --- Helpers ---------------------------------------------------------------------------------

    def pick(self, data, *, pending_only=False) -> Order | None:
        """One of the orders that have a PayPal order (only the PENDING ones if ``pending_only``)."""
        orders = Order.objects.filter(pk__in=self.order_ids, payment__provider_order_id__isnull=False)
        if pending_only:
            orders = orders.filter(status=OrderStatus.PENDING)
        ids = sorted(orders.values_list("pk", flat=True))
        if not ids:
            return None
        order_id = data.draw(st.sampled_from(ids), label="order")
        return Order.objects.select_related("payment", "user").get(pk=order_id)

    def capture(self, order, *, answer_lost):
        if answer_lost:
            self.paypal.fail(1, mode="drop_response", match=f"{order.payment.provider_order_id}/capture")
        try:
            payment_capture(order_id=order.pk)
        except PaymentError:
            pass

    def orders_at_paypal(self):
        return Order.objects.filter(
            pk__in=self.order_ids, payment__provider_order_id__isnull=False
        ).select_related("payment")

    def captures(self, order):
        return paypal_payments(self.paypal, order.payment.provider_order_id)["captures"]

    # --- The shopper and the staff ----------------------------------------------------------------

    def place_and_start(self, data):
        user = data.draw(st.sampled_from(self.users), label="user")
        line = st.fixed_dictionaries(
            {"product": st.sampled_from([p.pk for p in self.products]), "quantity": st.integers(1, 2)}
        )
        lines = data.draw(st.lists(line, min_size=1, max_size=2), label="lines")
        try:
            order = checkout_place(user=user, lines=lines)
        except OutOfStock:
            return
        self.order_ids.append(order.pk)
        try:
            payment_start(order_id=order.pk)
        except PaymentError:
            assert Order.objects.get(pk=order.pk).failure_reason == "gateway_error"

    def shopper_pays(self, data):
        """The payer approves at PayPal, PayPal decides what the capture will do, and the payer comes
        back (the return URL captures; the answer may be lost) or closes the tab."""
        order = self.pick(data, pending_only=True)
        if order is None:
            return
        outcome = data.draw(CAPTURE_OUTCOMES, label="capture outcome")
        provider_order_id = order.payment.provider_order_id
        self.paypal.approve(provider_order_id)
        amount = {
            "OTHER_AMOUNT": {"value": "0.50", "currency_code": order.currency},
            "OTHER_CURRENCY": {"value": str(order.total), "currency_code": "EUR"},
        }.get(outcome)
        self.paypal.next_capture(provider_order_id, "COMPLETED" if amount else outcome, amount=amount)
        if data.draw(MOSTLY, label="comes back"):
            self.capture(order, answer_lost=data.draw(st.booleans(), label="answer lost"))

    def shopper_or_staff_acts(self, data):
        """The return URL again (a reload, or CHECKOUT.ORDER.APPROVED: the same capture path), the
        shopper cancels the order, or staff refund a paid order."""
        order = self.pick(data)
        if order is None:
            return
        act = data.draw(st.sampled_from(["return again", "cancel", "staff refund"]), label="act")
        if act == "return again":
            self.capture(order, answer_lost=data.draw(st.booleans(), label="answer lost"))
        elif act == "cancel":
            try:
                order_cancel(user=order.user, order_id=order.pk)
            except OrderNotPending:
                assert Order.objects.get(pk=order.pk).status != OrderStatus.PENDING
        elif order.payment.status == PaymentStatus.SUCCESS:
            try:
                payment_refund(order_id=order.pk)
            except PaymentError:
                pass

    # --- PayPal ----------------------------------------------------------------------------------

    def paypal_acts(self, data):
        """PayPal on its own: a webhook, a decision on a capture held for review, letting an order it
        never captured expire, or the merchant refunding from PayPal's dashboard."""
        order = self.pick(data)
        if order is None:
            return
        event = data.draw(PAYPAL_EVENTS, label="event")
        provider_order_id = order.payment.provider_order_id
        captures = self.captures(order)
        if event in WEBHOOK_EVENT_TYPES:
            try:
                deliver_webhook(self.paypal, provider_order_id, event)
            except SimulatorControlError:  # nothing to tell about this order (no capture, no refund, ...)
                pass
            except PaymentError:  # not verified, or PayPal not answering: the view answers 400 / 503
                pass
        elif event.endswith("held capture"):
            decision = "COMPLETED" if event.startswith("release") else "DECLINED"
            for capture in captures:
                if capture["status"] == "PENDING":
                    self.paypal.settle_capture(capture["id"], decision)
        elif event == "order expires":
            if not captures:
                self.paypal.expire(provider_order_id)
        else:
            kept = money_kept(self.paypal, provider_order_id)
            for capture in captures:
                if capture["status"] in {"COMPLETED", "PARTIALLY_REFUNDED"} and kept > 0:
                    part = str(min(Decimal("1.00"), kept)) if event == "refund part" else None
                    self.paypal.refund(capture["id"], part)

    def paypal_fails(self, data):
        """The next calls to PayPal (on some path) fail."""
        count = data.draw(st.integers(1, 3), label="count")
        self.paypal.fail(
            count, match=data.draw(TROUBLE_PATHS, label="path"), **data.draw(TROUBLE, label="trouble")
        )

    # --- Time ------------------------------------------------------------------------------------

    def time_passes(self, data):
        """Time passes (every hold is that much older: the sweep's clock is the rows'), and the beat
        sweep runs at its end, or not, maybe while PayPal fails."""
        shift = timedelta(
            seconds=data.draw(st.sampled_from([0, 60, 900, 1500, 3600, 86400]), label="seconds")
        )
        Order.objects.update(reserved_until=F("reserved_until") - shift)
        ReservedStock.objects.update(expires_at=F("expires_at") - shift)
        if self.swept_at is not None:
            self.swept_at -= shift
        trouble = data.draw(st.one_of(st.none(), TROUBLE), label="trouble during the sweep")
        if trouble is not None:
            count = data.draw(st.sampled_from([1, 2, 20]), label="failing calls")
            self.paypal.fail(count, match="/v2/", **trouble)
        if not data.draw(MOSTLY, label="the sweep runs"):
            return
        paypal_answers = not self.paypal.server.state.failures
        started = timezone.now()
        payment_expire_overdue()
        self.swept_at = started
        if paypal_answers:
            # A sweep PayPal answered leaves no money with PayPal for a failed order; only a capture
            # PayPal still holds for review keeps its payment flagged.
            for order in self.orders_at_paypal():
                if order.status == OrderStatus.FAILED:
                    assert money_kept(self.paypal, order.payment.provider_order_id) == 0, order
                if order.payment.needs_reconciliation:
                    statuses = [c["status"] for c in self.captures(order)]
                    assert "PENDING" in statuses, (order, statuses)

    # --- Invariants ------------------------------------------------------------------------------

    @invariant()
    def no_order_pending_past_the_grace(self):
        if self.swept_at is None:
            return
        overdue = Order.objects.filter(
            status=OrderStatus.PENDING, reserved_until__lte=self.swept_at - timedelta(seconds=GRACE_SECONDS)
        )
        assert not overdue.exists(), list(overdue.values("pk", "reserved_until"))

    @invariant()
    def money_only_for_paid_orders(self):
        for order in self.orders_at_paypal():
            payment = order.payment
            at_paypal = paypal_payments(self.paypal, payment.provider_order_id)
            kept = kept_of(at_paypal)
            refunded = sum((Decimal(r["amount"]["value"]) for r in at_paypal["refunds"]), Decimal("0"))
            assert payment.refunded_amount <= refunded, (order, payment.refunded_amount, refunded)
            if order.status == OrderStatus.FAILED:
                assert kept == 0 or payment.needs_reconciliation, (
                    order,
                    kept,
                    payment.provider_responses[-1:],
                )
            if order.status == OrderStatus.SUCCESS:
                (capture,) = [c for c in at_paypal["captures"] if c["id"] == payment.capture_id]
                assert capture["status"] in MONEY_TAKEN, capture
                assert (Decimal(capture["amount"]["value"]), capture["amount"]["currency_code"]) == (
                    payment.amount,
                    payment.currency,
                )
            if payment.status == PaymentStatus.REFUNDED:
                assert kept == 0, (order, kept)

    @invariant()
    def stock_and_orders_are_consistent(self):
        if hasattr(self, "initial"):
            assert_invariants(self.initial)


@pytest.fixture
def settled_settings(settings):
    settings.PAYPAL_SETTLE_GRACE_SECONDS = GRACE_SECONDS
    settings.RESERVATION_TTL_SECONDS = 900
    return settings


@pytest.mark.django_db
def test_every_order_settles_whatever_paypal_answers(paypal, settled_settings, monkeypatch):
    # Placement runs here, not on the pool's threads: they could not see this test's transaction.
    monkeypatch.setattr("checkout.services.run_in_pool", lambda fn, /, *args, **kwargs: fn(*args, **kwargs))
    run_state_machine_as_test(
        lambda: PayPalCheckout(paypal),
        settings=settings(
            max_examples=30,
            stateful_step_count=30,
            deadline=None,
            # No "explain" phase: it traces every line and takes minutes on a failure of this test.
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
