"""Real threads against PostgreSQL. Each thread has its own database connection, closed at its end."""

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import IntegrityError, connection, connections, transaction

from inventory.models import Stock
from inventory.tests.factories import ProductFactory
from orders.errors import OutOfStock
from orders.models import Order
from orders.services import order_place
from orders.tests.factories import UserFactory
from orders.tests.invariants import assert_invariants

pytestmark = pytest.mark.django_db(transaction=True)


def run_concurrently(count, fn):
    """Start ``count`` calls of ``fn(index)`` at once (a barrier) and return their results or errors."""
    barrier = threading.Barrier(count)

    def call(index):
        try:
            barrier.wait(timeout=30)
            return fn(index)
        except Exception as error:
            return error
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as executor:
        return list(executor.map(call, range(count)))


def test_fifty_shoppers_race_for_the_last_seven_units():
    product = ProductFactory(on_hand=7)
    users = [UserFactory() for _ in range(50)]

    results = run_concurrently(
        50, lambda i: order_place(user=users[i], lines=[{"product": product.pk, "quantity": 1}])
    )

    placed = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, OutOfStock)]
    assert len(placed) == 7 and len(refused) == 43, [
        type(r) for r in results if not isinstance(r, (Order, OutOfStock))
    ]
    stock = Stock.objects.get(pk=product.pk)
    assert (stock.on_hand, stock.reserved) == (7, 7)
    assert Order.objects.count() == 7
    assert_invariants({product.pk: 7})


def test_orders_over_several_products_in_any_line_order_never_deadlock_or_oversell():
    products = [ProductFactory(on_hand=6) for _ in range(4)]
    users = [UserFactory() for _ in range(24)]
    rng = random.Random(7)
    orders_lines = []
    for _ in range(24):
        chosen = rng.sample(products, k=rng.randint(2, 4))  # random order of lines per order
        orders_lines.append([{"product": p.pk, "quantity": rng.randint(1, 2)} for p in chosen])

    results = run_concurrently(24, lambda i: order_place(user=users[i], lines=orders_lines[i]))

    unexpected = [r for r in results if not isinstance(r, (Order, OutOfStock))]
    assert unexpected == []  # a deadlock would surface here as an OperationalError
    assert any(isinstance(r, Order) for r in results) and any(isinstance(r, OutOfStock) for r in results)
    for stock in Stock.objects.filter(pk__in=[p.pk for p in products]):
        assert 0 <= stock.reserved <= stock.on_hand == 6
    assert_invariants({p.pk: 6 for p in products})


def test_two_concurrent_requests_with_one_idempotency_key_make_one_order():
    product = ProductFactory(on_hand=10)
    user = UserFactory()
    lines = [{"product": product.pk, "quantity": 2}]

    results = run_concurrently(2, lambda i: order_place(user=user, lines=lines, idempotency_key="same-key"))

    assert all(isinstance(r, Order) for r in results), results
    assert results[0].pk == results[1].pk
    assert Order.objects.count() == 1
    assert Stock.objects.get(pk=product.pk).reserved == 2


def test_the_stock_lock_is_what_prevents_overselling(monkeypatch):
    """Without the row lock the race is decided by luck and the CHECK constraint: the test above
    (every refusal a clean out_of_stock) fails without the lock."""
    import inventory.lock_objects
    import orders.services

    def no_lock(*, product_ids):
        return {s.pk: s for s in Stock.objects.filter(pk__in=list(product_ids))}

    monkeypatch.setattr(orders.services, "stock_lock", no_lock)
    product = ProductFactory(on_hand=3)
    users = [UserFactory() for _ in range(20)]
    gate = threading.Barrier(20)

    def place(i):
        # Widen the window between the read and the write, as a busy database would.
        with transaction.atomic():
            no_lock(product_ids=[product.pk])
        gate.wait(timeout=30)
        return order_place(user=users[i], lines=[{"product": product.pk, "quantity": 1}])

    results = run_concurrently(20, place)
    placed = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, OutOfStock)]
    crashed = [r for r in results if isinstance(r, IntegrityError)]
    # Every thread read "3 available" and went ahead: none got the clean out-of-stock answer, and
    # only the database CHECK (reserved <= on_hand) stopped the counter, as errors.
    assert refused == []
    assert len(crashed) == 20 - len(placed) > 0
    assert Stock.objects.get(pk=product.pk).reserved <= 3
    assert inventory.lock_objects.stock_lock is not no_lock
    for alias in connections:
        connections[alias].close()
