"""The bench harness (``make bench``, bench/) cannot rot: its SQL is run here against the test database.

- the INSERTs written from the models fill every NOT NULL column, and say so when one cannot be;
- the pgbench baseline of the placement row places real orders (pgbench itself, 2 clients), which
  the stock audit finds consistent;
- the HTTP row's load generator and the email row's bare loop, briefly, against the live server, the
  bundled broker and an SMTP sink;
- the sweep row, tiny: the set-based generator, ``order_expire_overdue`` and the one-statement SQL
  baseline, whose end states must be equal (the same check the bench runs).
"""

from __future__ import annotations

import json
import time

import pytest
from django.db import models
from django.utils import timezone

from bench import email_loop, http_load, placement, sweep
from bench.dataset import orders_generate, products_create, users_create
from bench.measure import Goal, Result, percentile, summary_lines
from bench.sqlgen import MissingColumn, columns_and_values, default_expression, insert_sql
from checkout.audit import stock_audit_run
from inventory.models import ReservedStock, Stock
from orders.models import Order, OrderStatus
from payments.models import Payment

pytestmark = pytest.mark.django_db(transaction=True)


def test_inserts_fill_every_required_column_from_the_model():
    columns, values = columns_and_values(
        Payment, {"order": "1", "transaction_id": "gen_random_uuid()", "amount": "5", "currency": "'USD'"}
    )
    written = dict(zip(columns, values, strict=True))
    assert written['"status"'] == "'PENDING'"  # the field's default
    assert written['"provider_responses"'] == "'[]'::jsonb"  # default=list
    assert written['"capture_id"'] == "''"  # a text column without a default
    assert written['"created_at"'] == "now()"  # auto_now_add
    assert '"provider_order_id"' not in written  # nullable: left NULL
    assert '"id"' not in written  # the sequence's
    with pytest.raises(MissingColumn, match="amount"):
        insert_sql(Payment, {"order": "1", "transaction_id": "gen_random_uuid()"})


def test_a_new_required_field_without_default_is_a_clear_error():
    weight = models.IntegerField()
    weight.set_attributes_from_name("weight")
    with pytest.raises(MissingColumn, match=r"Payment\.weight is NOT NULL and has no default"):
        default_expression(Payment, weight)
    unknown = models.CharField(max_length=10, default=object)
    unknown.set_attributes_from_name("kind")
    with pytest.raises(MissingColumn, match="no SQL counterpart"):
        default_expression(Payment, unknown)


def test_the_pgbench_baseline_places_consistent_orders():
    users = users_create(prefix="pgbench", count=5)
    (product,) = products_create(prefix="PGB", count=1, on_hand=20)
    tps, processed = placement.pgbench_run(product_id=product, user_ids=users, clients=2, per_client=6)
    assert processed == 12 and tps > 0
    orders = Order.objects.filter(lines__product_id=product)
    assert orders.count() == 12
    assert set(orders.values_list("status", flat=True)) == {OrderStatus.PENDING}
    assert Payment.objects.filter(order__in=orders, status="PENDING").count() == 12
    assert ReservedStock.objects.filter(product_id=product).count() == 12
    assert Stock.objects.get(pk=product).reserved == 12
    assert stock_audit_run() == []


def test_the_pgbench_baseline_never_oversells():
    users = users_create(prefix="pgbench", count=3)
    (product,) = products_create(prefix="PGB", count=1, on_hand=4)
    with pytest.raises(placement.BaselineFailed, match="processed 4 of 6"):
        placement.pgbench_run(product_id=product, user_ids=users, clients=1, per_client=6)
    assert Stock.objects.get(pk=product).reserved == 4
    assert stock_audit_run() == []


def test_generated_orders_are_consistent():
    users = users_create(prefix="gen", count=3)
    products = products_create(prefix="GEN", count=3, on_hand=100)
    pending = orders_generate(count=10, live=2, product_ids=products, user_ids=users)
    failed = orders_generate(
        count=4, product_ids=products, user_ids=users, status="FAILED", failure_reasons=["payment_declined"]
    )
    assert len(pending) == 12 and len(failed) == 4
    assert Order.objects.filter(pk__in=pending, reserved_until__lt=timezone.now()).count() == 10
    assert set(Order.objects.filter(pk__in=failed).values_list("status", "failure_reason")) == {
        ("FAILED", "payment_declined")
    }
    assert not ReservedStock.objects.filter(order_id__in=failed).exists()
    assert stock_audit_run() == []


def test_the_sweep_row_tiny():
    ours, baseline, state, differences = sweep.measure(orders=40, products=4, shoppers=5)
    assert differences == []
    assert state["orders by status"] == {("FAILED", "reservation_expired"): 40, ("PENDING", ""): 4}
    assert state["outbox rows per order"] == {1: 40, 0: 4}
    assert state["holds left"] > 0  # the live orders' holds
    assert ours > 0 and baseline > 0
    assert stock_audit_run() == []


def test_the_load_generator_places_orders_then_reads_them(live_server, paypal, django_user_model):
    from rest_framework.authtoken.models import Token

    tokens = [
        Token.objects.create(user=django_user_model.objects.create_user(f"load{n}")).key for n in range(2)
    ]
    (product,) = products_create(prefix="LOAD", count=1, on_hand=1000)
    port = int(live_server.url.rsplit(":", 1)[1])

    def job(method, threads):
        now = time.time()
        return {
            "host": "127.0.0.1",
            "port": port,
            "method": method,
            "start_at": now,
            "measure_from": now,
            "end_at": now + 1.0,
            "threads": threads,
        }

    body = {"lines": [{"product": product, "quantity": 1}]}
    posted = http_load.run(
        job("POST", [[{"path": "/api/orders/", "token": t, "body": body}] for t in tokens])
    )
    assert set(posted["statuses"]) == {"201"} and posted["errors"] == 0
    assert len(posted["latencies_ms"]) == posted["statuses"]["201"] >= 2
    assert set(posted["created"]) == set(tokens)
    read = http_load.run(
        job("GET", [[{"path": f"/api/orders/{posted['created'][t]}/", "token": t}] for t in tokens])
    )
    assert set(read["statuses"]) == {"200"} and read["statuses"]["200"] >= 2


def test_the_bare_email_loop_sends_each_message_once(email_pipeline, smtp_server):
    from notifications import kafka_client
    from orders.outcomes import order_outcomes_record

    email_pipeline.OUTBOX_PUBLISH_ON_COMMIT = False  # the messages go on the topic below, once
    users = users_create(prefix="loop", count=2)
    products = products_create(prefix="LOOP", count=2, on_hand=1)
    order_ids = orders_generate(
        count=3, product_ids=products, user_ids=users, status="FAILED", failure_reasons=["payment_declined"]
    )
    events = order_outcomes_record(orders=list(Order.objects.filter(pk__in=order_ids)))
    messages = [(event.key, json.dumps(event.payload).encode()) for event in events]
    assert kafka_client.publish(topic=email_pipeline.KAFKA_EMAIL_TOPIC, messages=messages) == [None] * 3
    sent = email_loop.run(
        {
            "bootstrap_servers": email_pipeline.KAFKA_BOOTSTRAP_SERVERS,
            "topic": email_pipeline.KAFKA_EMAIL_TOPIC,
            "group": "bench-loop-test",
            "smtp_host": smtp_server.host,
            "smtp_port": smtp_server.port,
            "from": "shop@example.com",
            "count": 3,
        }
    )
    assert sent["sent"] == 3 and sent["started_at"] <= time.time()
    assert smtp_server.event_counts() == {str(event.event_id): 1 for event in events}


def test_results_print_as_ours_baseline_ratio_goal():
    ratio_row = Result("1", "placements", 100.0, 400.0, "/s", 0.25, Goal(">= 0.5", at_least=0.5))
    timed_row = Result(
        "5", "paypal", 90.0, None, "orders/s", float("nan"), Goal("10,000 in < 2 min"), {"< 120 s": True}
    )
    assert not ratio_row.met and timed_row.met
    table = summary_lines([ratio_row, timed_row])
    assert table[2].split() == ["1", "100", "/s", "400", "/s", "0.25", ">=", "0.5", "NO"]
    assert table[3].split()[-1] == "yes" and "n/a" in table[3]
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0 and percentile(list(range(1, 101)), 0.99) == 99
