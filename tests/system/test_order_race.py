"""100 concurrent one-unit orders for a product with 10 units: exactly 10 reserve, 90 are rejected."""

import asyncio

import asyncpg

from common.database import asyncpg_dsn
from tests.cluster import eventually, new_customer
from tests.system.conftest import create_product, order_body


async def test_exactly_the_stock_is_reserved(cluster, api, admin):
    product_id = await create_product(api, admin, quantity=10)
    customer = await new_customer(api, "racer@example.com")
    with cluster.relays_paused():  # all 100 reach the saga and race for the stock (not refused by the stock view)
        placed = await asyncio.gather(
            *(api.post("/orders/", json=order_body(product_id), headers=customer) for _ in range(100))
        )
    assert [response.status_code for response in placed] == [201] * 100
    order_ids = {response.json()["_id"] for response in placed}

    async def states() -> dict[str, int]:
        sagas = (await api.get("/sagas?limit=500", headers=admin)).json()
        counts: dict[str, int] = {}
        for saga in sagas:
            if saga["order_id"] in order_ids:
                counts[saga["state"]] = counts.get(saga["state"], 0) + 1
        return counts

    final = await eventually(
        states, lambda counts: counts.get("AWAITING_PAYMENT", 0) + counts.get("REJECTED", 0) == 100, timeout=120
    )
    assert final == {"AWAITING_PAYMENT": 10, "REJECTED": 90}

    item = (await api.get(f"/inventory/{product_id}", headers=admin)).json()
    assert (item["available_quantity"], item["reserved_quantity"]) == (0, 10)
    orders = (await api.get("/orders/?limit=100", headers=customer)).json()
    statuses = [order["status"] for order in orders if order["_id"] in order_ids]
    await eventually(lambda: _rejected_orders(api, customer, order_ids), lambda count: count == 90, timeout=60)
    assert len(statuses) == 100

    stock = await asyncpg.connect(asyncpg_dsn(cluster.database_url("STOCK_DATABASE_URL")))
    try:
        held = await stock.fetchval(
            "SELECT count(*) FROM reservations r JOIN inventory_items i ON i.id = r.item_id"
            " WHERE i.product_id = $1 AND r.status = 'held'",
            product_id,
        )
        assert held == 10
    finally:
        await stock.close()


async def _rejected_orders(api, customer, order_ids) -> int:
    orders = (await api.get("/orders/?limit=100", headers=customer)).json()
    return sum(1 for order in orders if order["_id"] in order_ids and order["status"] == "rejected")
