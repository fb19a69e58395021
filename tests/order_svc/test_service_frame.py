"""What every service shares (health, readiness, OpenAPI docs), and the collection's optional trailing slash."""

from tests.order_svc.conftest import ORDERS, place
from tests.support import assert_refuses_bodies_over_the_limit


async def test_health_and_ready(client):
    assert (await client.get("/health")).json() == {"status": "ok", "service": "order_svc"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": True, "broker": True}}


async def test_openapi_document_lists_the_order_endpoints(client):
    document = (await client.get("/api/v1/docs/order_svc/openapi.json")).json()
    assert document["info"]["title"] == "Order service"
    assert {"/api/v1/orders", "/api/v1/orders/{order_id}", "/api/v1/orders/{order_id}/status"} <= set(document["paths"])


async def test_a_trailing_slash_is_optional_on_the_collection(client, customer):
    await place(client, customer)
    assert len((await client.get(ORDERS, headers=customer)).json()) == 1
    assert len((await client.get(f"{ORDERS}/", headers=customer)).json()) == 1


async def test_a_body_over_the_limit_is_a_json_413(client):
    await assert_refuses_bodies_over_the_limit(client, "/api/v1/orders/")
