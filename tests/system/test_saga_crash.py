"""The orchestrator killed (SIGKILL) mid-saga and started again: every saga completes, nothing is reserved twice."""

import asyncio

import asyncpg

from common.database import asyncpg_dsn
from tests.cluster import eventually, new_customer
from tests.system.conftest import create_product, order_body


async def saga_states(api, admin, order_ids: set[str]) -> list[str]:
    sagas = (await api.get("/sagas?limit=500", headers=admin)).json()
    return sorted(saga["state"] for saga in sagas if saga["order_id"] in order_ids)


async def test_sagas_survive_a_killed_orchestrator(cluster, api, admin):
    product_id = await create_product(api, admin, quantity=100)
    customer = await new_customer(api, "crash@example.com")
    placed = await asyncio.gather(
        *(api.post("/orders/", json=order_body(product_id), headers=customer) for _ in range(20))
    )
    order_ids = {response.json()["_id"] for response in placed}
    cluster.kill("saga")  # while the first reservations are under way

    # Payments arrive while the orchestrator is down.
    paid = sorted(order_ids)[:10]
    for order_id in paid:
        response = await api.put(f"/orders/{order_id}/status", json={"status": "paid"}, headers=customer)
        assert response.status_code == 200

    await cluster.restart("saga")
    final = await eventually(
        lambda: saga_states(api, admin, order_ids),
        lambda states: states == ["AWAITING_PAYMENT"] * 10 + ["COMPLETED"] * 10,
        timeout=120,
    )
    assert len(final) == 20

    item = (await api.get(f"/inventory/{product_id}", headers=admin)).json()
    # 10 confirmed units left the store; 10 are held for the unpaid orders.
    assert (item["available_quantity"], item["reserved_quantity"]) == (80, 10)
    stock = await asyncpg.connect(asyncpg_dsn(cluster.database_url("STOCK_DATABASE_URL")))
    try:
        reservations = await stock.fetch(
            "SELECT r.order_id, r.quantity, r.status FROM reservations r JOIN inventory_items i ON i.id = r.item_id"
            " WHERE i.product_id = $1",
            product_id,
        )
        assert sorted(r["order_id"] for r in reservations) == sorted(order_ids)  # one per order, none twice
        assert {r["order_id"] for r in reservations if r["status"] == "confirmed"} == set(paid)
    finally:
        await stock.close()
