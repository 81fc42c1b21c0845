"""How the order lifecycle keeps each order's payment in step, without importing payments (which sits
above orders): the payments app registers the one ``PaymentBook`` at start-up (``PaymentsConfig.ready``),
and every write of a ``Payment`` row happens in its code, in the transaction of the order's change.

The order services call it at the four moments an order's payment changes with it: placed (the
payment is opened), captured, failed (one order, or a batch of expired ones), and a late capture on an
order that had already failed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured


class PaymentBook(Protocol):
    def opened(self, *, order) -> None:
        """A PENDING payment for the freshly placed ``order``, with its transaction id and total."""

    def captured(self, *, order, capture_id: str, provider_response: dict | None) -> None:
        """The order was completed: its payment was captured (``capture_id``)."""

    def captured_late(self, *, order, capture_id: str, provider_response: dict | None) -> None:
        """Money reached PayPal for an order that had already failed: kept until the caller refunds it."""

    def failed(self, *, order, provider_response: dict | None, nothing_captured: bool) -> None:
        """The order failed; ``nothing_captured``: PayPal said that no money was taken."""

    def expired(self, *, order_ids: list[int], now: datetime) -> None:
        """These orders without a PayPal order failed with their expired hold (set-based)."""

    def noted(self, *, order, provider_response: dict) -> None:
        """Keep a PayPal answer about an order that is already final, for audit."""


_book: PaymentBook | None = None


def payment_book_register(book: PaymentBook) -> None:
    global _book
    _book = book


def payment_book() -> PaymentBook:
    if _book is None:
        raise ImproperlyConfigured("No PaymentBook is registered: is the payments app installed?")
    return _book
