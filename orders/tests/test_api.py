import threading
import time

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from inventory.models import ReservedStock, Stock
from inventory.tests.factories import ProductFactory
from orders.models import Order, OrderLine
from orders.services import order_cancel_by_staff, order_place
from payments.models import Payment

# Placement runs on the worker pool's threads, which only see committed rows.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_paypal")]


def nothing_written():
    return not (
        Order.objects.exists()
        or Payment.objects.exists()
        or OrderLine.objects.exists()
        or ReservedStock.objects.exists()
    )


def test_place_an_order(auth_client):
    mug = ProductFactory(on_hand=5)
    response = auth_client.post(
        "/api/orders/", {"lines": [{"product": mug.pk, "quantity": 2}]}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) >= {
        "id",
        "status",
        "failure_reason",
        "transaction_id",
        "total",
        "currency",
        "lines",
        "reserved_until",
        "payment",
    }
    assert (body["status"], body["failure_reason"], body["total"], body["currency"]) == (
        "PENDING",
        None,
        "20.00",
        "USD",
    )
    assert body["lines"] == [
        {"product": mug.pk, "name": mug.name, "quantity": 2, "unit_price": "10.00", "total": "20.00"}
    ]
    assert body["payment"] == {"status": "PENDING", "approval_url": None}
    assert body["transaction_id"] == str(Payment.objects.get(order_id=body["id"]).transaction_id)
    assert auth_client.get(f"/api/orders/{body['id']}/").json() == body
    assert auth_client.get("/api/orders/").json() == [body]


def test_client_cannot_set_prices_or_totals(auth_client):
    """Fields the API does not take are refused, not ignored: nothing is written."""
    mug = ProductFactory(on_hand=5)
    response = auth_client.post(
        "/api/orders/",
        {"lines": [{"product": mug.pk, "quantity": 1, "unit_price": "0.01"}], "total": "0.01"},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["errors"] == {
        "lines": {"0": {"unit_price": ["This field is not allowed."]}},
        "total": ["This field is not allowed."],
    }
    assert nothing_written()


def test_out_of_stock_is_409_with_every_short_item(auth_client):
    mug = ProductFactory(on_hand=1)
    cap = ProductFactory(on_hand=0)
    response = auth_client.post(
        "/api/orders/",
        {"lines": [{"product": mug.pk, "quantity": 3}, {"product": cap.pk, "quantity": 1}]},
        format="json",
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "out_of_stock" and body["message"]
    assert body["items"] == [
        {"product": mug.pk, "requested": 3, "available": 1},
        {"product": cap.pk, "requested": 1, "available": 0},
    ]
    assert nothing_written()


BAD_LINES = {
    "zero": [{"product": "P", "quantity": 0}],
    "negative": [{"product": "P", "quantity": -1}],
    "fractional": [{"product": "P", "quantity": 1.5}],
    "whole float": [{"product": "P", "quantity": 2.0}],
    "huge": [{"product": "P", "quantity": 10**12}],
    "string": [{"product": "P", "quantity": "two"}],
    "numeric string": [{"product": "P", "quantity": "2"}],
    "boolean": [{"product": "P", "quantity": True}],
    "null": [{"product": "P", "quantity": None}],
    "missing quantity": [{"product": "P"}],
    "product as string": [{"product": "abc", "quantity": 1}],
    "empty": [],
    "not a list": "lines",
    "line not an object": ["P"],
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_bad_lines_are_400_with_a_message(auth_client, case):
    mug = ProductFactory(on_hand=5)
    lines = BAD_LINES[case]
    if isinstance(lines, list):
        lines = [
            {k: (mug.pk if v == "P" else v) for k, v in line.items()} if isinstance(line, dict) else line
            for line in lines
        ]
    response = auth_client.post("/api/orders/", {"lines": lines}, format="json")
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == "invalid" and body["message"] and "lines" in body["errors"]
    assert nothing_written() and Stock.objects.get(pk=mug.pk).reserved == 0


@pytest.mark.parametrize("body", [{}, {"lines": None}, {"items": []}])
def test_missing_lines_are_400(auth_client, body):
    response = auth_client.post("/api/orders/", body, format="json")
    assert response.status_code == 400
    assert "lines" in response.json()["errors"]


def test_unknown_and_inactive_products_are_400(auth_client):
    hidden = ProductFactory(on_hand=5, is_active=False)
    response = auth_client.post(
        "/api/orders/",
        {"lines": [{"product": hidden.pk, "quantity": 1}, {"product": 424242, "quantity": 1}]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_product"
    assert response.json()["errors"]["lines"]["unknown_products"] == sorted([hidden.pk, 424242])
    assert nothing_written()


def test_duplicate_lines_are_merged(auth_client):
    mug = ProductFactory(on_hand=5)
    response = auth_client.post(
        "/api/orders/",
        {"lines": [{"product": mug.pk, "quantity": 1}, {"product": mug.pk, "quantity": 2}]},
        format="json",
    )
    assert response.status_code == 201
    assert [(line["product"], line["quantity"]) for line in response.json()["lines"]] == [(mug.pk, 3)]


def test_lines_of_one_product_over_the_maximum_have_their_own_code(auth_client, settings):
    """JSON Schema cannot state a limit on a sum across lines: the refusal says which rule it is."""
    settings.ORDER_MAX_QUANTITY_PER_LINE = 5
    mug = ProductFactory(on_hand=50)
    response = auth_client.post(
        "/api/orders/",
        {"lines": [{"product": mug.pk, "quantity": 3}, {"product": mug.pk, "quantity": 3}]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "product_quantity_exceeded"
    assert response.json()["errors"] == {"lines": {"products": [mug.pk]}}
    assert nothing_written()


def test_malformed_json_is_400(auth_client):
    response = auth_client.post("/api/orders/", '{"lines": [', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json" and response.json()["message"]
    assert nothing_written()


def test_no_login_is_401(api_client):
    mug = ProductFactory(on_hand=5)
    response = api_client.post("/api/orders/", {"lines": [{"product": mug.pk, "quantity": 1}]}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")
    assert response.json()["code"] == "not_authenticated"
    assert api_client.get("/api/orders/").status_code == 401
    assert nothing_written()


def test_token_authentication(user):
    from rest_framework.authtoken.models import Token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert client.get("/api/orders/").status_code == 200


def test_someone_elses_order_is_404_everywhere(auth_client, other_user):
    mug = ProductFactory(on_hand=5)
    theirs = order_place(user=other_user, lines=[{"product": mug.pk, "quantity": 1}])
    assert auth_client.get(f"/api/orders/{theirs.pk}/").status_code == 404
    response = auth_client.post(f"/api/orders/{theirs.pk}/cancel/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert auth_client.get("/api/orders/").json() == []
    assert Order.objects.get(pk=theirs.pk).status == "PENDING"


def test_cancel_pending_then_409(auth_client, user):
    mug = ProductFactory(on_hand=5)
    order = order_place(user=user, lines=[{"product": mug.pk, "quantity": 2}])
    response = auth_client.post(f"/api/orders/{order.pk}/cancel/")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["failure_reason"]) == (
        "FAILED",
        "cancelled_by_shopper",
    )
    assert Stock.objects.get(pk=mug.pk).reserved == 0
    again = auth_client.post(f"/api/orders/{order.pk}/cancel/")
    assert again.status_code == 409 and again.json()["code"] == "order_not_pending"


def test_idempotency_key_header_returns_the_same_order(auth_client):
    mug = ProductFactory(on_hand=5)
    payload = {"lines": [{"product": mug.pk, "quantity": 1}]}
    first = auth_client.post("/api/orders/", payload, format="json", HTTP_IDEMPOTENCY_KEY="abc")
    second = auth_client.post("/api/orders/", payload, format="json", HTTP_IDEMPOTENCY_KEY="abc")
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert Order.objects.count() == 1 and Stock.objects.get(pk=mug.pk).reserved == 1
    other = auth_client.post(
        "/api/orders/",
        {"lines": [{"product": mug.pk, "quantity": 2}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="abc",
    )
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"


def test_concurrent_requests_with_one_idempotency_key_make_one_order(user):
    mug = ProductFactory(on_hand=5)
    barrier = threading.Barrier(2)
    responses = []

    def post():
        client = APIClient()
        client.force_authenticate(user)
        barrier.wait(timeout=10)
        responses.append(
            client.post(
                "/api/orders/",
                {"lines": [{"product": mug.pk, "quantity": 1}]},
                format="json",
                HTTP_IDEMPOTENCY_KEY="k",
            )
        )
        connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json()["id"] == responses[1].json()["id"]
    assert Order.objects.count() == 1


def wait_until(condition, timeout=10.0, message="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.01)


def test_full_order_queue_answers_503_busy(settings, user):
    """One worker, a queue of one: with the worker stuck on a locked stock row and one placement
    waiting, a third placement is refused at once with 503 and Retry-After."""
    from orders.worker_pool import get_pool

    settings.ORDER_WORKERS = 1
    settings.ORDER_QUEUE_SIZE = 1
    mug = ProductFactory(on_hand=10)
    pool = get_pool()
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
    first, rest = [], []
    threads = [threading.Thread(target=post, args=(first,))]
    threads[0].start()
    wait_until(lambda: pool._queue.qsize() == 0 and pool._queue.unfinished_tasks == 1, message="worker busy")
    threads += [threading.Thread(target=post, args=(rest,)) for _ in range(2)]
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: len(rest) == 1, message="one refusal")
    busy = rest[0]
    assert busy.status_code == 503
    assert busy.json()["code"] == "busy" and busy.json()["message"]
    assert int(busy["Retry-After"]) > 0

    release.set()
    for thread in [holder, *threads]:
        thread.join(30)
    assert sorted(r.status_code for r in first + rest) == [201, 201, 503]
    assert Order.objects.count() == 2


def test_an_exception_inside_placement_rolls_everything_back(auth_client, monkeypatch):
    import orders.services

    mug = ProductFactory(on_hand=5)

    def explode(**kwargs):
        raise RuntimeError("injected failure between the order and its holds")

    monkeypatch.setattr(orders.services, "holds_create", explode)
    response = auth_client.post(
        "/api/orders/", {"lines": [{"product": mug.pk, "quantity": 2}]}, format="json"
    )
    assert response.status_code == 500
    assert (
        response.json()["code"] == "placement_failed" and "Nothing was charged" in response.json()["message"]
    )
    assert nothing_written()
    assert (Stock.objects.get(pk=mug.pk).on_hand, Stock.objects.get(pk=mug.pk).reserved) == (5, 0)


def test_worker_threads_leave_no_database_connection_open(auth_client):
    """Every job closes its worker's connection: the backends of this database stay at the baseline."""
    mug = ProductFactory(on_hand=50)

    def backends():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0]

    before = backends()
    for _ in range(8):
        assert (
            auth_client.post(
                "/api/orders/", {"lines": [{"product": mug.pk, "quantity": 1}]}, format="json"
            ).status_code
            == 201
        )
    wait_until(lambda: backends() <= before, message="worker connections closed")


def test_openapi_schema_documents_the_api(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in [
        "/api/orders/",
        "/api/orders/{order_id}/",
        "/api/orders/{order_id}/cancel/",
        "/api/products/",
        "/api/auth/register/",
        "/api/auth/token/",
    ]:
        assert path in schema["paths"], path
    post = schema["paths"]["/api/orders/"]["post"]
    assert {"201", "400", "409", "503"} <= set(post["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])


def test_a_staff_cancel_shows_its_own_reason_in_the_api(auth_client, user):
    order = order_place(user=user, lines=[{"product": ProductFactory(on_hand=2).pk, "quantity": 1}])
    order_cancel_by_staff(order_id=order.pk)
    body = auth_client.get(f"/api/orders/{order.pk}/").json()
    assert (body["status"], body["failure_reason"], body["payment"]["status"]) == (
        "FAILED",
        "cancelled_by_staff",
        "FAILED",
    )
