import pytest


@pytest.fixture
def no_paypal(monkeypatch):
    """For tests of the checkout core alone: placement does not go on to create a PayPal order.
    The PayPal path has its own integration tests through the real SDK and the simulator."""
    monkeypatch.setattr("checkout.services.checkout_payment_link", lambda order: None)
