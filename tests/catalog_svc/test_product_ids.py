"""An id that names no product is 404 on every route, whether it is well-formed or not; never a 500."""

import pytest

from tests.catalog_svc.conftest import create_product, outbox_documents

IDS = ["not-an-id", "123", "64b0c0ffee", "zzzzzzzzzzzzzzzzzzzzzzzz", "64b0c0ffee64b0c0ffee64b0c0ffee", "%20", "6" * 24]


@pytest.mark.parametrize("product_id", IDS)
async def test_unknown_or_malformed_id_is_404(client, admin, catalog_db, product_id):
    await create_product(client, admin)
    before = await outbox_documents(catalog_db)
    path = f"/api/v1/products/{product_id}"
    for response in (
        await client.get(path),
        await client.put(path, json={"price": 10}, headers=admin),
        await client.delete(path, headers=admin),
    ):
        assert response.status_code == 404, (response.request.method, response.text)
        assert response.json()["error"] == "not_found"
    assert await outbox_documents(catalog_db) == before


async def test_categories_is_not_taken_for_an_id(client, admin):
    await create_product(client, admin, category="Audio")
    await create_product(client, admin, category="Electronics")
    await create_product(client, admin, category="Audio")
    assert (await client.get("/api/v1/products/categories")).json() == ["Audio", "Electronics"]
