"""Migration 0004 opens the ledger: every product gets its opening balance (and its stock row, if
the old admin saved it without one)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("inventory", "0003_release_expired_reservations_schedule")]
AFTER = [("inventory", "0004_stock_ledger")]


@pytest.mark.django_db(transaction=True)
def test_the_ledger_migration_writes_an_opening_balance_for_every_product():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Product, Stock = old.get_model("inventory", "Product"), old.get_model("inventory", "Stock")
    stocked = Product.objects.create(sku="A", name="A", slug="a", price="1.00", currency="USD")
    Stock.objects.create(product=stocked, on_hand=7, reserved=0)
    orphan = Product.objects.create(sku="B", name="B", slug="b", price="1.00", currency="USD")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    Stock, StockMovement = new.get_model("inventory", "Stock"), new.get_model("inventory", "StockMovement")

    assert Stock.objects.get(pk=orphan.pk).on_hand == 0
    balances = dict(StockMovement.objects.values_list("product_id", "delta"))
    assert balances == {stocked.pk: 7, orphan.pk: 0}
    assert set(StockMovement.objects.values_list("reason", flat=True)) == {"opening_balance"}

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # leave the database as the other tests expect
