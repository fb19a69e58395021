"""Health, readiness, OpenAPI docs and the error format of the catalog."""

from tests.support import assert_refuses_bodies_over_the_limit


async def test_health_and_ready(client):
    assert (await client.get("/health")).json() == {"status": "ok", "service": "catalog_svc"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": True, "broker": True}}


async def test_openapi_document_lists_the_product_endpoints(client):
    document = (await client.get("/api/v1/docs/catalog_svc/openapi.json")).json()
    assert document["info"]["title"] == "Catalog service"
    assert {"/api/v1/products", "/api/v1/products/categories", "/api/v1/products/{product_id}"} <= {
        path.rstrip("/") for path in document["paths"]
    }


async def test_unknown_method_uses_the_json_error_format(client):
    response = await client.patch("/api/v1/products/")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


async def test_a_body_over_the_limit_is_a_json_413(client):
    await assert_refuses_bodies_over_the_limit(client, "/api/v1/products/")
