"""product-topic: product.created creates the inventory (threshold 10% of the quantity), a repeated
product.created changes nothing, product.deleted retires the item."""

import uuid

from common.messages import PRODUCT_CREATED, PRODUCT_DELETED, STOCK_LOW, STOCK_UPDATED
from stock_svc.models import InventoryItem, StockHistory
from tests.stock_svc.conftest import deliver, get_item, outbox_events, product, received


async def create_product(product_id: str, quantity: int, event_id: uuid.UUID | None = None) -> None:
    await deliver(received(PRODUCT_CREATED, product(product_id, quantity), product_id, event_id))


async def test_seed_products_get_their_inventory(client, user):
    await create_product("product_id_1", 50)
    await create_product("product_id_2", 100)
    first = await get_item(client, user, "product_id_1")
    second = await get_item(client, user, "product_id_2")
    assert {k: first[k] for k in ("product_id", "available_quantity", "reserved_quantity", "reorder_threshold")} == {
        "product_id": "product_id_1",
        "available_quantity": 50,
        "reserved_quantity": 0,
        "reorder_threshold": 5,
    }
    assert (second["available_quantity"], second["reserved_quantity"], second["reorder_threshold"]) == (100, 0, 10)
    assert (first["id"], second["id"]) == (1, 2)


async def test_threshold_rounds_down(client, user):
    await create_product("product-1", 75)
    await create_product("product-2", 9)
    assert (await get_item(client, user, "product-1"))["reorder_threshold"] == 7
    assert (await get_item(client, user, "product-2"))["reorder_threshold"] == 0


async def test_creation_is_recorded_and_announced(client):
    event_id = uuid.uuid4()
    await create_product("product-1", 50, event_id)
    entry = await StockHistory.get(item__product_id="product-1")
    assert (entry.type, entry.change, entry.available_after, entry.reference) == ("created", 50, 50, str(event_id))
    [updated] = await outbox_events(STOCK_UPDATED)
    assert updated["payload"] == {"product_id": "product-1", "stock": 50}
    assert updated["headers"]["causation_id"] == str(event_id)


async def test_a_product_created_with_no_stock_is_low_at_once(client):
    await create_product("product-1", 0)
    assert [event["event_type"] for event in await outbox_events()] == [STOCK_UPDATED, STOCK_LOW]


async def test_a_repeated_product_created_creates_one_record(client, user):
    await create_product("product-1", 50)
    await create_product("product-1", 80)  # the same product again, under another event id
    event_id = uuid.uuid4()
    await create_product("product-1", 90, event_id)
    await create_product("product-1", 90, event_id)  # a redelivery: the inbox skips it
    assert await InventoryItem.filter(product_id="product-1").count() == 1
    assert (await get_item(client, user, "product-1"))["available_quantity"] == 50
    assert await StockHistory.all().count() == 1
    assert len(await outbox_events(STOCK_UPDATED)) == 1


async def test_product_deleted_retires_the_item(client, admin, user):
    await create_product("product-1", 50)
    await create_product("product-2", 50)
    await deliver(received(PRODUCT_DELETED, product("product-1", 50), "product-1"))
    assert (await client.get("/api/v1/inventory/product-1", headers=user)).status_code == 404
    listed = (await client.get("/api/v1/inventory/", headers=user)).json()
    assert [item["product_id"] for item in listed] == ["product-2"]
    body = {"product_id": "product-1", "quantity": 1, "order_id": "o-1"}
    assert (await client.post("/api/v1/inventory/reserve", json=body, headers=admin)).status_code == 404
    # Its history stays readable, and a repeated deletion changes nothing.
    assert len((await client.get("/api/v1/inventory/history/product-1", headers=user)).json()) == 1
    await deliver(received(PRODUCT_DELETED, product("product-1", 50), "product-1"))
    assert (await InventoryItem.get(product_id="product-1")).retired_at is not None
