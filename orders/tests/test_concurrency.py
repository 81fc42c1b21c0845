"""Real threads against PostgreSQL. Each thread has its own database connection, closed at its end."""

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import IntegrityError, connection, connections

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


def _both_find_no_order_for_the_key_at_first(monkeypatch):
    """The two requests' first look-ups of the key both miss: each checked before the other committed."""
    import orders.services

    look_up = orders.services._order_for_key
    first_looks = threading.Semaphore(2)

    def racing_look_up(**kwargs):
        if first_looks.acquire(blocking=False):
            return None
        return look_up(**kwargs)

    monkeypatch.setattr(orders.services, "_order_for_key", racing_look_up)


@pytest.mark.parametrize("refusal", ["the last units", "the pending cap"])
def test_a_request_refused_because_its_twin_placed_the_order_answers_that_order(
    monkeypatch, settings, refusal
):
    """Two requests with one Idempotency-Key: the one placed second would be refused (out of stock:
    the first took the last units; or at the cap: the first is the pending order that reached it),
    but it is the same order, so it gets that order back."""
    if refusal == "the pending cap":
        settings.ORDER_MAX_PENDING_PER_USER = 1
    product = ProductFactory(on_hand=2 if refusal == "the last units" else 10)
    user = UserFactory()
    lines = [{"product": product.pk, "quantity": 2}]
    _both_find_no_order_for_the_key_at_first(monkeypatch)

    results = run_concurrently(2, lambda i: order_place(user=user, lines=lines, idempotency_key="same-key"))

    assert all(isinstance(r, Order) for r in results), results
    assert results[0].pk == results[1].pk
    assert Order.objects.count() == 1
    assert Stock.objects.get(pk=product.pk).reserved == 2


def _reserving_all_at_once(monkeypatch, count, reserve):
    """Make ``count`` placements reach their reservation together: each has read the stock (without a
    lock) and written its order before any of them reserves, the widest window a busy database gives."""
    import orders.services

    gate = threading.Barrier(count)

    def at_the_gate(**kwargs):
        gate.wait(timeout=30)
        return reserve(**kwargs)

    monkeypatch.setattr(orders.services, "holds_create", at_the_gate)


def test_placements_that_read_the_same_stock_reserve_no_more_than_there_is(monkeypatch):
    """Twenty placements read "3 available" and write their orders; the conditional reservation
    lets three through, and the others are refused cleanly (out_of_stock) with nothing written."""
    from inventory.reservations import holds_create

    _reserving_all_at_once(monkeypatch, 20, holds_create)
    product = ProductFactory(on_hand=3)
    users = [UserFactory() for _ in range(20)]

    results = run_concurrently(
        20, lambda i: order_place(user=users[i], lines=[{"product": product.pk, "quantity": 1}])
    )

    placed = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, OutOfStock)]
    assert (len(placed), len(refused)) == (3, 17), [
        r for r in results if not isinstance(r, (Order, OutOfStock))
    ]
    assert all(r.data["items"] == [{"product": product.pk, "requested": 1, "available": 0}] for r in refused)
    assert Stock.objects.get(pk=product.pk).reserved == 3
    assert Order.objects.count() == 3
    assert_invariants({product.pk: 3})


def test_the_conditional_reservation_is_what_prevents_overselling(monkeypatch):
    """The same race with the condition (``on_hand - reserved >= units``) left out of the reservation:
    every placement went ahead on what it had read, none got the clean out-of-stock answer, and only
    the database CHECK (reserved <= on_hand) stopped the counter, as errors. The test above fails so."""
    from django.db.models import F

    from inventory.models import ReservedStock

    def unconditional(*, order, quantities, expires_at):
        for product_id, quantity in quantities.items():
            ReservedStock.objects.create(
                order=order, product_id=product_id, quantity=quantity, expires_at=expires_at
            )
            Stock.objects.filter(pk=product_id).update(reserved=F("reserved") + quantity)
        return True

    _reserving_all_at_once(monkeypatch, 20, unconditional)
    product = ProductFactory(on_hand=3)
    users = [UserFactory() for _ in range(20)]

    results = run_concurrently(
        20, lambda i: order_place(user=users[i], lines=[{"product": product.pk, "quantity": 1}])
    )

    placed = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, OutOfStock)]
    crashed = [r for r in results if isinstance(r, IntegrityError)]
    assert refused == []
    assert (len(placed), len(crashed)) == (3, 17)
    assert Stock.objects.get(pk=product.pk).reserved == 3
    for alias in connections:
        connections[alias].close()
