"""Random sequences of checkout operations; every invariant of DESIGN.md holds after each step."""

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from inventory.models import ReservedStock
from inventory.tests.factories import ProductFactory
from orders.errors import OrderNotPending, OutOfStock
from orders.models import FailureReason, Order
from orders.services import (
    CompletionResult,
    order_cancel,
    order_complete,
    order_expire_overdue,
    order_fail,
    order_place,
)
from orders.tests.factories import UserFactory
from orders.tests.invariants import assert_invariants
from payments.models import Payment

REASONS = [r.value for r in FailureReason if r != FailureReason.RESERVATION_EXPIRED]


class Checkout(RuleBasedStateMachine):
    @initialize(on_hand=st.lists(st.integers(min_value=0, max_value=6), min_size=2, max_size=4))
    def create_catalog(self, on_hand):
        self.products = [ProductFactory(on_hand=n) for n in on_hand]
        self.initial = {p.pk: n for p, n in zip(self.products, on_hand, strict=True)}
        self.user = UserFactory()
        self.order_ids: list[int] = []

    @rule(data=st.data())
    def place(self, data):
        chosen = data.draw(st.lists(st.sampled_from(self.products), min_size=1, max_size=4))
        lines = [{"product": p.pk, "quantity": data.draw(st.integers(1, 4))} for p in chosen]
        try:
            order = order_place(user=self.user, lines=lines)
        except OutOfStock:
            return
        self.order_ids.append(order.pk)

    @rule(data=st.data())
    def complete(self, data):
        if self.order_ids:
            order_id = data.draw(st.sampled_from(self.order_ids))
            if order_complete(order_id=order_id, capture_id="CAP") == CompletionResult.ORDER_FAILED:
                # A capture landed on a failed order: the payments layer refunds it (its own tests
                # drive that through PayPal); here the refund is recorded as it would record it.
                Payment.objects.filter(order_id=order_id).update(
                    status="REFUNDED",
                    refund_id="REF",
                    refunded_amount=F("amount"),
                    needs_reconciliation=False,
                )

    @rule(data=st.data(), reason=st.sampled_from(REASONS))
    def fail(self, data, reason):
        if self.order_ids:
            order_fail(order_id=data.draw(st.sampled_from(self.order_ids)), reason=reason)

    @rule(data=st.data())
    def cancel(self, data):
        if self.order_ids:
            order_id = data.draw(st.sampled_from(self.order_ids))
            try:
                order_cancel(user=self.user, order_id=order_id)
            except OrderNotPending:
                assert Order.objects.get(pk=order_id).status != "PENDING"

    @rule(data=st.data(), sweep=st.booleans())
    def let_a_hold_expire(self, data, sweep):
        """Move an order's hold into the past; then either the sweeper or the next placement releases it."""
        if not self.order_ids:
            return
        order_id = data.draw(st.sampled_from(self.order_ids))
        past = timezone.now() - timedelta(seconds=1)
        Order.objects.filter(pk=order_id, status="PENDING").update(reserved_until=past)
        ReservedStock.objects.filter(order_id=order_id).update(expires_at=past)
        if sweep:
            order_expire_overdue()
            assert not Order.objects.filter(status="PENDING", reserved_until__lte=past).exists()

    @invariant()
    def invariants_hold(self):
        if hasattr(self, "initial"):
            assert_invariants(self.initial)


@pytest.mark.django_db
def test_checkout_invariants_hold_under_random_operations():
    run_state_machine_as_test(
        Checkout,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
