"""How many SQL statements ``POST /api/orders/`` makes, on every thread (the request's and the order
pool's), with the real SDK against the PayPal simulator: a regression shows up here, not only in the
bench (issue 15)."""

import threading

import pytest
from django.db import connection
from django.db.backends.signals import connection_created

from inventory.tests.factories import ProductFactory
from payments.models import Payment

pytestmark = pytest.mark.django_db(transaction=True)

# The pool's worker, one transaction: the shopper's row lock, their pending orders (the cap), the
# products with their stock, the order, its lines, its payment, its holds, the reservation (8). The
# request's thread: the order's lines with their products, read once for the PayPal order and for the
# answer; after the PayPal call, one UPDATE recording it on the payment, conditional on the payment
# being as placement wrote it (2). The answer is the order as placed: it is not read again. (Before
# issue 15: 15 statements, and a transaction more.)
POST_ORDER_STATEMENTS = 10


class StatementLog:
    """Every statement run on a connection of this test's threads, from when it is started."""

    def __init__(self):
        self.statements: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, execute, sql, params, many, context):
        with self._lock:
            self.statements.append((threading.current_thread().name, sql))
        return execute(sql, params, many, context)

    def attach(self, sender, connection, **kwargs):
        connection.execute_wrappers.append(self)


@pytest.fixture
def statements():
    log = StatementLog()
    connection_created.connect(log.attach)
    connection.ensure_connection()
    connection.execute_wrappers.append(log)
    try:
        yield log
    finally:
        connection.execute_wrappers.remove(log)
        connection_created.disconnect(log.attach)


def test_post_order_makes_a_fixed_number_of_statements(auth_client, paypal, statements):
    mug, tee = ProductFactory(on_hand=5), ProductFactory(on_hand=5)
    auth_client.post("/api/orders/", {"lines": [{"product": tee.pk, "quantity": 1}]}, format="json")
    statements.statements.clear()

    response = auth_client.post(
        "/api/orders/",
        {"lines": [{"product": mug.pk, "quantity": 2}, {"product": tee.pk, "quantity": 1}]},
        format="json",
    )

    made = list(statements.statements)
    assert response.status_code == 201, response.json()
    payment = Payment.objects.get(order_id=response.json()["id"])
    assert response.json()["payment"] == {"status": "PENDING", "approval_url": payment.approval_url}
    assert payment.approval_url and payment.provider_order_id
    assert len(made) == POST_ORDER_STATEMENTS, "\n".join(f"{thread}: {sql[:160]}" for thread, sql in made)
