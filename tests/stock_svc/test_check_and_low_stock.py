"""Stock checks and the low-stock list (items at or under their reorder threshold)."""

from tests.stock_svc.conftest import create_item


async def test_check_says_whether_the_quantity_is_in_stock(client, admin, user):
    await create_item(client, admin, "product-1", 5)
    response = await client.get("/api/v1/inventory/check?product_id=product-1&quantity=5", headers=user)
    assert response.json() == {"product_id": "product-1", "requested": 5, "available": 5, "in_stock": True}
    response = await client.get("/api/v1/inventory/check?product_id=product-1&quantity=6", headers=user)
    assert response.json() == {"product_id": "product-1", "requested": 6, "available": 5, "in_stock": False}
    response = await client.get("/api/v1/inventory/check?product_id=product-1", headers=user)
    assert response.json()["requested"] == 1


async def test_check_counts_only_available_units(client, admin, user):
    await create_item(client, admin, "product-1", 5)
    await client.post(
        "/api/v1/inventory/reserve", json={"product_id": "product-1", "quantity": 4, "order_id": "o-1"}, headers=admin
    )
    response = await client.get("/api/v1/inventory/check?product_id=product-1&quantity=2", headers=user)
    assert response.json() == {"product_id": "product-1", "requested": 2, "available": 1, "in_stock": False}


async def test_low_stock_lists_items_at_or_under_their_threshold(client, admin, user):
    await create_item(client, admin, "plenty", 100, reorder_threshold=10)
    await create_item(client, admin, "at-threshold", 10, reorder_threshold=10)
    await create_item(client, admin, "under", 3, reorder_threshold=10)
    await create_item(client, admin, "sold-out", 0, reorder_threshold=0)
    response = await client.get("/api/v1/inventory/low-stock", headers=user)
    assert response.status_code == 200
    assert [item["product_id"] for item in response.json()] == ["at-threshold", "under", "sold-out"]
    page = await client.get("/api/v1/inventory/low-stock?skip=1&limit=1", headers=user)
    assert [item["product_id"] for item in page.json()] == ["under"]


async def test_an_item_leaves_the_low_stock_list_when_restocked(client, admin, user):
    await create_item(client, admin, "product-1", 4, reorder_threshold=5)
    await client.post(
        "/api/v1/inventory/adjust", json={"product_id": "product-1", "quantity_change": 10}, headers=admin
    )
    assert (await client.get("/api/v1/inventory/low-stock", headers=user)).json() == []
