"""The checkout's series on /metrics (orders/metrics.py) move with what happens to orders."""

import threading

import pytest
from django.db import connection, transaction
from django.test import Client
from rest_framework.test import APIClient

from inventory.models import Stock
from inventory.tests.factories import ProductFactory
from orders.tests.test_api import wait_until
from tests.metrics import scrape

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_paypal")]


def delta(before, after, name, **labels) -> float:
    return (after.value(name, **labels) or 0) - (before.value(name, **labels) or 0)


def test_placing_and_cancelling_an_order_moves_the_series(auth_client):
    mug = ProductFactory(on_hand=5)
    metrics = Client()
    before = scrape(metrics)

    placed = auth_client.post("/api/orders/", {"lines": [{"product": mug.pk, "quantity": 1}]}, format="json")
    assert placed.status_code == 201
    short = auth_client.post("/api/orders/", {"lines": [{"product": mug.pk, "quantity": 9}]}, format="json")
    assert short.status_code == 409
    middle = scrape(metrics)
    assert auth_client.post(f"/api/orders/{placed.json()['id']}/cancel/").status_code == 200
    after = scrape(metrics)

    assert delta(before, middle, "shop_orders_total", outcome="placed", reason="") == 1
    assert delta(before, middle, "shop_order_placement_seconds_count", outcome="placed") == 1
    assert delta(before, middle, "shop_order_placement_seconds_count", outcome="out_of_stock") == 1
    assert delta(before, middle, "shop_order_placement_seconds_sum", outcome="placed") > 0
    assert delta(before, middle, "shop_order_placement_seconds_bucket", outcome="placed", le="+Inf") == 1
    assert delta(middle, after, "shop_orders_total", outcome="failed", reason="cancelled_by_shopper") == 1
    assert delta(before, after, "shop_order_busy_total") == 0
    # The cancel's outcome event waits in the outbox (no Kafka here): the backlog shows it.
    assert after.value("shop_outbox_backlog") == 1
    assert after.value("shop_outbox_oldest_unpublished_age_seconds") > 0


def test_a_rollback_counts_no_order(auth_client, monkeypatch):
    import orders.services

    mug = ProductFactory(on_hand=5)

    def broken(**kwargs):
        raise RuntimeError("the payment row could not be written")

    monkeypatch.setattr(orders.services.OrderLine.objects, "bulk_create", broken)
    before = scrape(Client())
    response = auth_client.post(
        "/api/orders/", {"lines": [{"product": mug.pk, "quantity": 1}]}, format="json"
    )
    assert response.status_code == 500
    after = scrape(Client())
    assert delta(before, after, "shop_orders_total", outcome="placed", reason="") == 0
    assert delta(before, after, "shop_order_placement_seconds_count", outcome="placement_failed") == 1


def test_a_full_queue_shows_its_depth_and_counts_the_busy_answer(settings, user):
    """One worker, a queue of one (as in test_api): while the worker is stuck on a locked stock row
    and one placement waits, /metrics shows a queue depth of 1; the next placement's 503 is counted."""
    from orders.worker_pool import get_pool

    settings.ORDER_WORKERS = 1
    settings.ORDER_QUEUE_SIZE = 1
    mug = ProductFactory(on_hand=10)
    pool = get_pool()
    metrics = Client()
    before = scrape(metrics)
    locked, release = threading.Event(), threading.Event()

    def hold_the_stock_row():
        with transaction.atomic():
            Stock.objects.select_for_update().get(pk=mug.pk)
            locked.set()
            release.wait(30)
        connection.close()

    def post(results):
        client = APIClient()
        client.force_authenticate(user)
        results.append(
            client.post("/api/orders/", {"lines": [{"product": mug.pk, "quantity": 1}]}, format="json")
        )
        connection.close()

    holder = threading.Thread(target=hold_the_stock_row)
    holder.start()
    assert locked.wait(10)
    answers = []
    threads = [threading.Thread(target=post, args=(answers,))]
    threads[0].start()
    wait_until(lambda: pool._queue.unfinished_tasks == 1 and pool._queue.qsize() == 0, message="worker busy")
    threads.append(threading.Thread(target=post, args=(answers,)))
    threads[1].start()
    wait_until(lambda: pool._queue.qsize() == 1, message="one placement waiting")
    jammed = scrape(metrics)
    refused = APIClient()
    refused.force_authenticate(user)
    busy = refused.post("/api/orders/", {"lines": [{"product": mug.pk, "quantity": 1}]}, format="json")
    assert busy.status_code == 503
    after_busy = scrape(metrics)

    release.set()
    for thread in [holder, *threads]:
        thread.join(30)
    assert sorted(answer.status_code for answer in answers) == [201, 201]
    after = scrape(metrics)

    assert jammed.value("shop_order_pool_queue_depth") == before.value("shop_order_pool_queue_depth") + 1
    assert delta(jammed, after_busy, "shop_order_busy_total") == 1
    assert delta(jammed, after_busy, "shop_order_placement_seconds_count", outcome="busy") == 1
    assert after.value("shop_order_pool_queue_depth") == before.value("shop_order_pool_queue_depth")
    assert delta(before, after, "shop_orders_total", outcome="placed", reason="") == 2
