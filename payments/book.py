"""The payments side of the order lifecycle (``orders.payment_port.PaymentBook``): each order's one
``Payment`` row changes here, in the transaction in which its order changes (the caller holds the
order's row lock)."""

from __future__ import annotations

from datetime import datetime

from payments.models import Payment, PaymentStatus


def _note(payment: Payment, provider_response: dict | None) -> None:
    if provider_response is not None:
        payment.provider_responses = [*payment.provider_responses, provider_response]


class PaymentBook:
    def opened(self, *, order) -> None:
        Payment.objects.create(
            order=order,
            transaction_id=order.transaction_id,
            amount=order.total,
            currency=order.currency,
            provider="paypal",
        )

    def captured(self, *, order, capture_id: str, provider_response: dict | None) -> None:
        payment = order.payment
        payment.status = PaymentStatus.SUCCESS
        payment.capture_id = capture_id or payment.capture_id
        _note(payment, provider_response)
        payment.save(update_fields=["status", "capture_id", "provider_responses", "updated_at"])

    def captured_late(self, *, order, capture_id: str, provider_response: dict | None) -> None:
        payment = order.payment
        if capture_id:
            payment.capture_id = capture_id
        # Money reached PayPal for an order that failed: kept until the caller's refund succeeds.
        payment.needs_reconciliation = payment.status != PaymentStatus.REFUNDED
        _note(payment, provider_response)
        payment.save(update_fields=["capture_id", "needs_reconciliation", "provider_responses", "updated_at"])

    def failed(self, *, order, provider_response: dict | None, nothing_captured: bool) -> None:
        payment = order.payment
        if payment.status == PaymentStatus.PENDING:
            payment.status = PaymentStatus.FAILED
        # Unless PayPal just told the caller that nothing was captured, a PayPal order may hold money
        # we have not heard of (a capture whose answer was lost): the sweep asks PayPal and refunds it.
        payment.needs_reconciliation = (
            bool(payment.provider_order_id)
            and not nothing_captured
            and payment.status != PaymentStatus.REFUNDED
        )
        _note(payment, provider_response)
        payment.save(update_fields=["status", "needs_reconciliation", "provider_responses", "updated_at"])

    def expired(self, *, order_ids: list[int], now: datetime) -> None:
        Payment.objects.filter(order_id__in=order_ids, status=PaymentStatus.PENDING).update(
            status=PaymentStatus.FAILED, updated_at=now
        )

    def noted(self, *, order, provider_response: dict) -> None:
        _note(order.payment, provider_response)
        order.payment.save(update_fields=["provider_responses", "updated_at"])
