"""What every service shares (health, readiness, OpenAPI docs), and routing that keeps fixed paths apart from
product ids."""

from tests.stock_svc.conftest import create_item
from tests.support import assert_refuses_bodies_over_the_limit


async def test_health_and_ready(client):
    assert (await client.get("/health")).json() == {"status": "ok", "service": "stock_svc"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": True, "broker": True}}


async def test_openapi_document_lists_the_inventory_endpoints(client):
    document = (await client.get("/api/v1/docs/stock_svc/openapi.json")).json()
    assert document["info"]["title"] == "Stock service"
    assert {
        "/api/v1/inventory",
        "/api/v1/inventory/check",
        "/api/v1/inventory/low-stock",
        "/api/v1/inventory/reserve",
        "/api/v1/inventory/release",
        "/api/v1/inventory/adjust",
        "/api/v1/inventory/{product_id}",
        "/api/v1/inventory/history/{product_id}",
    } <= set(document["paths"])


async def test_fixed_paths_are_not_taken_for_product_ids(client, admin, user):
    for product_id in ("check", "low-stock", "history"):
        await create_item(client, admin, product_id, 1, reorder_threshold=1)
    assert (await client.get("/api/v1/inventory/check", headers=user)).status_code == 422  # product_id missing
    assert [item["product_id"] for item in (await client.get("/api/v1/inventory/low-stock", headers=user)).json()] == [
        "check",
        "low-stock",
        "history",
    ]
    history = (await client.get("/api/v1/inventory/history/history", headers=user)).json()
    assert [entry["product_id"] for entry in history] == ["history"]


async def test_a_trailing_slash_is_optional_on_the_collection(client, admin, user):
    await create_item(client, admin, "product-1", 1)
    assert len((await client.get("/api/v1/inventory", headers=user)).json()) == 1
    assert len((await client.get("/api/v1/inventory/", headers=user)).json()) == 1


async def test_a_body_over_the_limit_is_a_json_413(client):
    await assert_refuses_bodies_over_the_limit(client, "/api/v1/inventory/")
