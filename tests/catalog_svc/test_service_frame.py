"""Health, readiness, OpenAPI docs and the error format of the catalog."""


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
