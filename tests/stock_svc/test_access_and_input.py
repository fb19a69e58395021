"""Every bad request gets a clear JSON error: 401 without a token, 403 for a user's write, 404 for an unknown
product, 422 naming the field of a bad body or query, 400 for a body that is not JSON."""

import pytest

from tests.stock_svc.conftest import create_item

RESERVATION = {"product_id": "product-1", "quantity": 1, "order_id": "o-1"}
ADJUSTMENT = {"product_id": "product-1", "quantity_change": 1}

READS = [
    "/api/v1/inventory/",
    "/api/v1/inventory/product-1",
    "/api/v1/inventory/check?product_id=product-1&quantity=1",
    "/api/v1/inventory/low-stock",
    "/api/v1/inventory/history/product-1",
]

WRITES = [
    ("POST", "/api/v1/inventory/", {"product_id": "product-2", "available_quantity": 1}),
    ("PUT", "/api/v1/inventory/product-1", {"available_quantity": 1}),
    ("POST", "/api/v1/inventory/reserve", RESERVATION),
    ("POST", "/api/v1/inventory/release", RESERVATION),
    ("POST", "/api/v1/inventory/adjust", ADJUSTMENT),
]


@pytest.mark.parametrize("path", READS)
async def test_reads_need_a_signed_in_user(client, admin, user, path):
    await create_item(client, admin, "product-1", 10)
    response = await client.get(path)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert (await client.get(path, headers={"Authorization": "Bearer not-a-token"})).status_code == 401
    assert (await client.get(path, headers=user)).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_writes_need_an_admin(client, admin, user, method, path, body):
    await create_item(client, admin, "product-1", 10)
    assert (await client.request(method, path, json=body)).status_code == 401
    forbidden = await client.request(method, path, json=body, headers=user)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == "forbidden"
    history = (await client.get("/api/v1/inventory/history/product-1", headers=user)).json()
    assert len(history) == 1  # only the creation: the refused writes changed nothing


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/inventory/", {"available_quantity": 5}, "product_id"),
        ("POST", "/api/v1/inventory/", {"product_id": "", "available_quantity": 5}, "product_id"),
        ("POST", "/api/v1/inventory/", {"product_id": "x" * 101, "available_quantity": 5}, "product_id"),
        ("POST", "/api/v1/inventory/", {"product_id": "p", "available_quantity": -1}, "available_quantity"),
        ("POST", "/api/v1/inventory/", {"product_id": "p", "available_quantity": "5"}, "available_quantity"),
        ("POST", "/api/v1/inventory/", {"product_id": "p", "available_quantity": 2.5}, "available_quantity"),
        ("POST", "/api/v1/inventory/", {"product_id": "p", "available_quantity": 10**10}, "available_quantity"),
        ("POST", "/api/v1/inventory/", {"product_id": "p", "available_quantity": 5, "color": "red"}, "color"),
        (
            "POST",
            "/api/v1/inventory/",
            {"product_id": "p", "available_quantity": 5, "reorder_threshold": -2},
            "reorder_threshold",
        ),
        ("PUT", "/api/v1/inventory/product-1", {}, "body"),
        ("PUT", "/api/v1/inventory/product-1", {"available_quantity": None}, "available_quantity"),
        ("PUT", "/api/v1/inventory/product-1", {"reorder_threshold": -1}, "reorder_threshold"),
        ("POST", "/api/v1/inventory/reserve", {**RESERVATION, "quantity": 0}, "quantity"),
        ("POST", "/api/v1/inventory/reserve", {**RESERVATION, "quantity": True}, "quantity"),
        ("POST", "/api/v1/inventory/reserve", {"product_id": "product-1", "quantity": 1}, "order_id"),
        ("POST", "/api/v1/inventory/release", {**RESERVATION, "quantity": -3}, "quantity"),
        ("POST", "/api/v1/inventory/release", {**RESERVATION, "order_id": " "}, "order_id"),
        ("POST", "/api/v1/inventory/adjust", {**ADJUSTMENT, "quantity_change": 0}, "quantity_change"),
        ("POST", "/api/v1/inventory/adjust", {"product_id": "product-1"}, "quantity_change"),
        ("POST", "/api/v1/inventory/adjust", {**ADJUSTMENT, "reference_id": ""}, "reference_id"),
    ],
)
async def test_bad_bodies_are_422_naming_the_field(client, admin, method, path, body, field):
    await create_item(client, admin, "product-1", 10)
    response = await client.request(method, path, json=body, headers=admin)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_failed"
    assert [problem["field"] for problem in response.json()["fields"]] == [field]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("/api/v1/inventory/check?quantity=1", "product_id"),
        ("/api/v1/inventory/check?product_id=product-1&quantity=0", "quantity"),
        ("/api/v1/inventory/check?product_id=product-1&quantity=many", "quantity"),
        ("/api/v1/inventory/?skip=-1", "skip"),
        ("/api/v1/inventory/?limit=0", "limit"),
        ("/api/v1/inventory/low-stock?limit=5000", "limit"),
        ("/api/v1/inventory/history/product-1?skip=x", "skip"),
    ],
)
async def test_bad_queries_are_422_naming_the_parameter(client, admin, user, query, field):
    await create_item(client, admin, "product-1", 10)
    response = await client.get(query, headers=user)
    assert response.status_code == 422, response.text
    assert [problem["field"] for problem in response.json()["fields"]] == [field]


async def test_a_body_that_is_not_json_is_400(client, admin):
    response = await client.post("/api/v1/inventory/reserve", content=b"{not json", headers=admin)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/inventory/unknown", None),
        ("GET", "/api/v1/inventory/history/unknown", None),
        ("GET", "/api/v1/inventory/check?product_id=unknown&quantity=1", None),
        ("PUT", "/api/v1/inventory/unknown", {"available_quantity": 1}),
        ("POST", "/api/v1/inventory/reserve", {**RESERVATION, "product_id": "unknown"}),
        ("POST", "/api/v1/inventory/release", {**RESERVATION, "product_id": "unknown"}),
        ("POST", "/api/v1/inventory/adjust", {**ADJUSTMENT, "product_id": "unknown"}),
    ],
)
async def test_unknown_product_is_404(client, admin, method, path, body):
    response = await client.request(method, path, json=body, headers=admin)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert response.json()["product_id"] == "unknown"
