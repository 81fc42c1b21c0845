import pytest

from orders.tests.factories import UserFactory


@pytest.fixture
def shopper(db):
    return UserFactory()


@pytest.fixture
def outcomes(monkeypatch):
    """Every outcome recorded for the email outbox, as (order id, order status, payment status); the
    real recording still happens."""
    import orders.services
    import payments.services

    recorded = []
    real = orders.services.order_outcome_record

    def record(*, order):
        order.payment.refresh_from_db(fields=["status"])
        recorded.append((order.pk, order.status, order.payment.status))
        return real(order=order)

    monkeypatch.setattr(orders.services, "order_outcome_record", record)
    monkeypatch.setattr(payments.services, "order_outcome_record", record)
    return recorded
