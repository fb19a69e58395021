"""A change whose event cannot be written is not made: product and outbox commit or roll back together.

The event's write is made to fail for real: the outbox counter is set back, so the next event's position
collides with an existing one on the unique position index.
"""

from tests.catalog_svc.conftest import SEED_PRODUCTS, create_product, outbox_documents


async def set_back_the_outbox_counter(catalog_db) -> None:
    [last] = [event async for event in catalog_db.outbox.find().sort("position", -1).limit(1)]
    await catalog_db.counters.update_one({"_id": "outbox"}, {"$set": {"position": last["position"] - 1}})


async def test_a_failed_create_leaves_neither_product_nor_event(client, admin, catalog_db):
    product = await create_product(client, admin)
    before = await outbox_documents(catalog_db)
    await set_back_the_outbox_counter(catalog_db)
    response = await client.post("/api/v1/products/", json={**SEED_PRODUCTS[1]}, headers=admin)
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "Traceback" not in response.text
    assert (await client.get("/api/v1/products/")).json() == [product]
    assert await outbox_documents(catalog_db) == before


async def test_a_failed_update_leaves_the_product_unchanged(client, admin, catalog_db):
    product = await create_product(client, admin)
    before = await outbox_documents(catalog_db)
    await set_back_the_outbox_counter(catalog_db)
    response = await client.put(f"/api/v1/products/{product['_id']}", json={"price": 1}, headers=admin)
    assert response.status_code == 500
    assert (await client.get(f"/api/v1/products/{product['_id']}")).json() == product
    assert await outbox_documents(catalog_db) == before


async def test_a_failed_delete_keeps_the_product(client, admin, catalog_db):
    product = await create_product(client, admin)
    await set_back_the_outbox_counter(catalog_db)
    response = await client.delete(f"/api/v1/products/{product['_id']}", headers=admin)
    assert response.status_code == 500
    assert (await client.get(f"/api/v1/products/{product['_id']}")).json() == product
    assert len(await outbox_documents(catalog_db)) == 1
