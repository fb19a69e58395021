"""Every change records a history row and writes stock.updated to the outbox in its transaction; a change that
leaves the item at or under its reorder threshold also writes stock.low."""

from common.messages import STOCK_LOW, STOCK_UPDATED
from common.topics import STOCK_UPDATES
from tests.stock_svc.conftest import create_item, outbox_events, stock_payloads


async def history(client, headers, product_id: str = "product-1", query: str = "") -> list[dict]:
    response = await client.get(f"/api/v1/inventory/history/{product_id}{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_every_change_has_a_history_row_and_a_stock_updated_event(client, admin, user):
    await create_item(client, admin, "product-1", 100)
    reservation = {"product_id": "product-1", "quantity": 20, "order_id": "o-1"}
    await client.post("/api/v1/inventory/reserve", json=reservation, headers=admin)
    await client.post("/api/v1/inventory/release", json={**reservation, "quantity": 5}, headers=admin)
    adjustment = {"product_id": "product-1", "quantity_change": -10, "reference_id": "stocktake-3"}
    await client.post("/api/v1/inventory/adjust", json=adjustment, headers=admin)
    await client.put("/api/v1/inventory/product-1", json={"available_quantity": 70}, headers=admin)

    entries = [
        (
            e["type"],
            e["change"],
            e["available_before"],
            e["available_after"],
            e["reserved_before"],
            e["reserved_after"],
            e["reference"],
        )
        for e in await history(client, user)
    ]
    assert entries == [  # newest first
        ("updated", -5, 75, 70, 15, 15, None),
        ("adjusted", -10, 85, 75, 15, 15, "stocktake-3"),
        ("released", 5, 80, 85, 20, 15, "o-1"),
        ("reserved", -20, 100, 80, 0, 20, "o-1"),
        ("created", 100, 0, 100, 0, 0, None),
    ]
    assert await stock_payloads(STOCK_UPDATED, "product-1") == [100, 80, 85, 75, 70]
    updated = await outbox_events(STOCK_UPDATED)
    assert {(e["topic"], e["aggregate_type"], e["aggregate_id"]) for e in updated} == {
        (STOCK_UPDATES, "inventory", "product-1")
    }
    assert updated[0]["payload"] == {"product_id": "product-1", "stock": 100}
    assert await outbox_events(STOCK_LOW) == []


async def test_stock_low_is_written_at_or_under_the_threshold(client, admin):
    await create_item(client, admin, "product-1", 12, reorder_threshold=5)
    for change in (-6, -1, -1, 10):  # 6, then 5 (at the threshold), then 4 (under), then 14
        await client.post(
            "/api/v1/inventory/adjust", json={"product_id": "product-1", "quantity_change": change}, headers=admin
        )
    assert await stock_payloads(STOCK_UPDATED, "product-1") == [12, 6, 5, 4, 14]
    assert await stock_payloads(STOCK_LOW, "product-1") == [5, 4]
    low = (await outbox_events(STOCK_LOW))[0]
    assert (low["topic"], low["payload"]) == (STOCK_UPDATES, {"product_id": "product-1", "stock": 5})


async def test_a_refused_change_writes_nothing(client, admin):
    await create_item(client, admin, "product-1", 2)
    body = {"product_id": "product-1", "quantity": 3, "order_id": "o-1"}
    assert (await client.post("/api/v1/inventory/reserve", json=body, headers=admin)).status_code == 409
    assert len(await history(client, admin)) == 1
    assert [event["event_type"] for event in await outbox_events()] == [STOCK_UPDATED]  # the creation's only


async def test_history_pages_newest_first(client, admin, user):
    await create_item(client, admin, "product-1", 10)
    for change in (1, 2, 3):
        await client.post(
            "/api/v1/inventory/adjust", json={"product_id": "product-1", "quantity_change": change}, headers=admin
        )
    page = await history(client, user, query="?skip=1&limit=2")
    assert [entry["change"] for entry in page] == [2, 1]
    assert all(entry["product_id"] == "product-1" for entry in page)
