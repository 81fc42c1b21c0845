"""The API's front door (index, documentation from local files) and its paged lists."""

import re

import pytest
from django.contrib.staticfiles import finders
from rest_framework.test import APIClient

from inventory.tests.factories import ProductFactory
from orders.services import order_place

pytestmark = pytest.mark.django_db


def links(response) -> dict[str, str]:
    return {rel: url for url, rel in re.findall(r'<([^>]+)>; rel="([a-z]+)"', response.get("Link", ""))}


def test_the_api_index_names_every_entry_point():
    response = APIClient().get("/api/")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    assert body["products"].endswith("/api/products/") and body["orders"].endswith("/api/orders/")
    assert {"register", "token", "schema", "docs", "redoc"} <= set(body)


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_the_documentation_pages_load_pinned_local_assets(client, url):
    page = client.get(url).content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page)
    assert assets, page[:500]
    for asset in assets:
        assert asset.startswith("/static/drf_spectacular_sidecar/"), asset
        assert finders.find(asset.removeprefix("/static/")), asset
    assert "cdn." not in page and "@latest" not in page


def test_the_product_list_pages_with_links_and_a_total():
    products = sorted((ProductFactory(name=f"Item {i:02d}") for i in range(7)), key=lambda p: p.name)
    client = APIClient()

    first = client.get("/api/products/", {"page_size": 3})

    assert first.status_code == 200 and isinstance(first.json(), list)
    assert [p["id"] for p in first.json()] == [p.pk for p in products[:3]]
    assert first["X-Total-Count"] == "7"
    assert set(links(first)) == {"first", "next", "last"}
    last = client.get(links(first)["last"])
    assert [p["id"] for p in last.json()] == [products[6].pk]
    assert set(links(last)) == {"first", "prev", "last"}
    middle = client.get(links(first)["next"])
    assert [p["id"] for p in middle.json()] == [p.pk for p in products[3:6]]
    assert client.get("/api/products/").json() == client.get("/api/products/", {"page": 1}).json()


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"page": "0"}, 400, "invalid"),
        ({"page": "x"}, 400, "invalid"),
        ({"page_size": "101"}, 400, "invalid"),
        ({"page_size": "0"}, 400, "invalid"),
        ({"page": "5"}, 404, "not_found"),
    ],
)
def test_bad_pages_are_clear_errors(query, status, code):
    ProductFactory()
    response = APIClient().get("/api/products/", query)
    assert response.status_code == status and response.json()["code"] == code


def test_the_order_list_pages_only_my_orders(auth_client, user, other_user):
    mug = ProductFactory(on_hand=50)
    mine = [order_place(user=user, lines=[{"product": mug.pk, "quantity": 1}]) for _ in range(5)]
    order_place(user=other_user, lines=[{"product": mug.pk, "quantity": 1}])

    response = auth_client.get("/api/orders/", {"page_size": 2, "page": 3})

    assert response["X-Total-Count"] == "5"
    assert [order["id"] for order in response.json()] == [mine[0].pk]  # newest first: the oldest is last


def test_the_schema_documents_the_paging():
    schema = APIClient().get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/products/"]["get"]
    parameters = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert parameters["page_size"]["maximum"] == 100 and parameters["page"]["minimum"] == 1
    assert {"Link", "X-Total-Count"} <= set(operation["responses"]["200"]["headers"])
