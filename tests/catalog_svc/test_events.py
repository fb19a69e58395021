"""Every change writes its product event to the outbox in the same transaction; the payload is the product
as the API returns it."""

import asyncio

from tests.catalog_svc.conftest import SEED_PRODUCTS, create_product, outbox_documents


def summary(document: dict) -> tuple:
    return (
        document["topic"],
        document["event_type"],
        document["aggregate_type"],
        document["aggregate_id"],
        document["payload"],
    )


async def test_create_writes_product_created(client, admin, catalog_db):
    response = await client.post("/api/v1/products/", json=SEED_PRODUCTS[0], headers=admin)
    product = response.json()
    [event] = await outbox_documents(catalog_db)
    assert summary(event) == ("product-topic", "product.created", "product", product["_id"], product)
    assert list(event["payload"]) == list(product)
    assert event["headers"]["correlation_id"] == response.headers["X-Request-ID"]
    assert (event["published_at"], event["attempts"], event["last_error"]) == (None, 0, None)
    assert event["created_at"].tzinfo is not None


async def test_update_writes_product_updated_with_the_new_state(client, admin, catalog_db):
    product = await create_product(client, admin)
    response = await client.put(
        f"/api/v1/products/{product['_id']}", json={"price": 849.5, "quantity": 40}, headers=admin
    )
    assert response.status_code == 200
    updated = response.json()
    assert updated == {**product, "price": 849.5, "quantity": 40}
    assert (await client.get(f"/api/v1/products/{product['_id']}")).json() == updated
    created, changed = await outbox_documents(catalog_db)
    assert summary(changed) == ("product-topic", "product.updated", "product", product["_id"], updated)
    assert changed["position"] > created["position"]


async def test_an_empty_update_changes_nothing_and_writes_no_event(client, admin, catalog_db):
    product = await create_product(client, admin)
    response = await client.put(f"/api/v1/products/{product['_id']}", json={}, headers=admin)
    assert response.json() == product
    assert len(await outbox_documents(catalog_db)) == 1


async def test_delete_writes_product_deleted_with_the_last_state(client, admin, catalog_db):
    product = await create_product(client, admin)
    response = await client.delete(f"/api/v1/products/{product['_id']}", headers=admin)
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"/api/v1/products/{product['_id']}")).status_code == 404
    assert (await client.get("/api/v1/products/")).json() == []
    _, deleted = await outbox_documents(catalog_db)
    assert summary(deleted) == ("product-topic", "product.deleted", "product", product["_id"], product)
    again = await client.delete(f"/api/v1/products/{product['_id']}", headers=admin)
    assert again.status_code == 404
    assert len(await outbox_documents(catalog_db)) == 2


async def test_positions_follow_the_order_of_the_changes(client, admin, catalog_db):
    first = await create_product(client, admin, name="first")
    second = await create_product(client, admin, name="second")
    await client.put(f"/api/v1/products/{first['_id']}", json={"name": "first again"}, headers=admin)
    await client.delete(f"/api/v1/products/{second['_id']}", headers=admin)
    events = await outbox_documents(catalog_db)
    assert [(event["event_type"], event["payload"]["name"]) for event in events] == [
        ("product.created", "first"),
        ("product.created", "second"),
        ("product.updated", "first again"),
        ("product.deleted", "second"),
    ]
    positions = [event["position"] for event in events]
    assert positions == sorted(set(positions))


async def test_concurrent_creates_each_commit_with_one_event(client, admin, catalog_db):
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/products/", json={**SEED_PRODUCTS[0], "name": f"p{n}"}, headers=admin)
            for n in range(30)
        )
    )
    assert [response.status_code for response in responses] == [201] * 30
    events = await outbox_documents(catalog_db)
    assert sorted(event["aggregate_id"] for event in events) == sorted(response.json()["_id"] for response in responses)
    assert len({event["position"] for event in events}) == 30
