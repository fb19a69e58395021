"""Inventory items over HTTP: create, list, read, update (seed step 4.2's response shape)."""

from tests.stock_svc.conftest import create_item, get_item, quantities

FIELDS = [
    "product_id",
    "available_quantity",
    "reserved_quantity",
    "reorder_threshold",
    "id",
    "created_at",
    "updated_at",
]


async def test_admin_creates_an_item_in_the_seed_shape(client, admin, user):
    created = await create_item(client, admin, "product-1", 50)
    assert list(created) == FIELDS
    assert created["product_id"] == "product-1"
    assert (created["available_quantity"], created["reserved_quantity"], created["reorder_threshold"]) == (50, 0, 5)
    assert created["id"] == 1
    assert await get_item(client, user, "product-1") == created


async def test_given_threshold_is_kept(client, admin):
    created = await create_item(client, admin, "product-1", 50, reorder_threshold=20)
    assert created["reorder_threshold"] == 20


async def test_creating_an_existing_item_is_a_conflict(client, admin):
    await create_item(client, admin, "product-1", 50)
    response = await client.post(
        "/api/v1/inventory/", json={"product_id": "product-1", "available_quantity": 7}, headers=admin
    )
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert response.json()["product_id"] == "product-1"


async def test_list_pages_by_id(client, admin, user):
    for n in range(5):
        await create_item(client, admin, f"product-{n}", 10 + n)
    everything = (await client.get("/api/v1/inventory/", headers=user)).json()
    assert [item["product_id"] for item in everything] == [f"product-{n}" for n in range(5)]
    page = (await client.get("/api/v1/inventory?skip=1&limit=2", headers=user)).json()
    assert [item["product_id"] for item in page] == ["product-1", "product-2"]


async def test_admin_sets_the_quantity_and_the_threshold(client, admin, user):
    await create_item(client, admin, "product-1", 50)
    await client.post(
        "/api/v1/inventory/reserve", json={"product_id": "product-1", "quantity": 3, "order_id": "o-1"}, headers=admin
    )
    response = await client.put("/api/v1/inventory/product-1", json={"available_quantity": 80}, headers=admin)
    assert response.status_code == 200
    assert quantities(response.json()) == (80, 3)  # the reservation is untouched
    response = await client.put("/api/v1/inventory/product-1", json={"reorder_threshold": 12}, headers=admin)
    assert (response.json()["available_quantity"], response.json()["reorder_threshold"]) == (80, 12)
    response = await client.put(
        "/api/v1/inventory/product-1", json={"available_quantity": 0, "reorder_threshold": 0}, headers=admin
    )
    assert (response.json()["available_quantity"], response.json()["reorder_threshold"]) == (0, 0)
    updated = await get_item(client, user, "product-1")
    assert updated["updated_at"] > updated["created_at"]
