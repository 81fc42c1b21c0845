"""The expiry sweep in many small batches (key-set paging): every overdue order once, stock in step."""

from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory.models import ReservedStock
from inventory.tests.factories import ProductFactory
from inventory.tests.test_expiry import expire
from notifications.models import OutboxEvent
from orders.models import Order
from orders.services import order_expire_overdue, order_place
from orders.tests.factories import UserFactory
from orders.tests.invariants import assert_invariants
from payments.models import Payment


@pytest.mark.django_db
def test_a_sweep_of_many_batches_expires_every_overdue_order_exactly_once():
    products = [ProductFactory(on_hand=100) for _ in range(3)]
    overdue, live, with_paypal = [], [], []
    for index in range(29):  # overdue, live and PayPal-backed orders interleaved by id
        lines = [{"product": products[index % 3].pk, "quantity": 1 + index % 4}]
        if index % 5 == 0:
            lines.append({"product": products[(index + 1) % 3].pk, "quantity": 2})
        order = order_place(user=UserFactory(), lines=lines)
        if index % 7 == 3:
            live.append(order.pk)
            continue
        expire(order)
        if index % 6 == 1:
            Payment.objects.filter(order=order).update(provider_order_id=f"PAYPAL-{order.pk}")
            with_paypal.append(order.pk)
        else:
            overdue.append(order.pk)

    with CaptureQueriesContext(connection) as queries:
        sweep = order_expire_overdue(batch_size=4)

    assert sweep.released == overdue  # each once, in id order
    assert sweep.with_provider == with_paypal
    assert sweep.batches == -(-(len(overdue) + len(with_paypal)) // 4)
    assert set(Order.objects.filter(status="FAILED").values_list("pk", flat=True)) == set(overdue)
    assert set(Order.objects.filter(status="PENDING").values_list("pk", flat=True)) == set(live + with_paypal)
    assert Counter(OutboxEvent.objects.values_list("order_id", flat=True)) == dict.fromkeys(overdue, 1)
    assert not ReservedStock.objects.filter(order_id__in=overdue).exists()
    assert ReservedStock.objects.filter(order_id__in=live + with_paypal).count() > 0
    assert_invariants({product.pk: 100 for product in products})  # reserved == the sum of the holds left
    # Key-set paging: each batch's look-up is the same statement, whatever came before (no list of the
    # ids already seen).
    lookups = [
        q["sql"] for q in queries.captured_queries if "SKIP LOCKED" in q["sql"] and "orders_order" in q["sql"]
    ]
    assert len(lookups) == sweep.batches
    later = lookups[1:]  # (the first has no "after" yet)
    assert max(map(len, later)) - min(map(len, later)) < 10, "the look-up grows with each batch"

    again = order_expire_overdue(batch_size=4)
    assert (again.released, again.with_provider) == ([], with_paypal)
    assert OutboxEvent.objects.count() == len(overdue)
    assert_invariants({product.pk: 100 for product in products})
