"""Orphaned orders: pending long after any saga would have settled them, their order.placed never having reached a
saga. The reconciler publishes it again, once per ORPHAN_AFTER; the saga makes one saga of any number of copies."""

import asyncio
from datetime import timedelta

from tortoise import connections

from order_svc.orders import DB
from order_svc.reconciler import republish_orphans
from tests.order_svc.conftest import ORDERS, SMARTPHONE, item, outbox_events, place, set_status

AFTER = timedelta(seconds=0.2)


async def test_an_order_whose_placement_was_lost_is_published_again_once_per_window(client, customer):
    lost = await place(client, customer, item(SMARTPHONE, 2))
    paid = await place(client, customer)
    assert (await set_status(client, customer, paid["_id"], "paid")).status_code == 200
    first = await outbox_events("order.placed")
    await connections.get(DB).execute_query("DELETE FROM outbox WHERE aggregate_id = $1", [lost["_id"]])

    assert await republish_orphans(AFTER) == 0  # not old enough yet
    await asyncio.sleep(0.3)
    assert await republish_orphans(AFTER) == 1  # the paid order is no orphan
    [again] = [event for event in await outbox_events("order.placed") if event["aggregate_id"] == lost["_id"]]
    [original] = [event for event in first if event["aggregate_id"] == lost["_id"]]
    assert again["payload"] == original["payload"]
    assert again["id"] != original["id"]
    assert await republish_orphans(AFTER) == 0  # once per window

    await asyncio.sleep(0.3)
    assert await republish_orphans(AFTER) == 1  # still pending a window later: once more


async def test_admins_list_the_orders_the_reconciler_published_again(client, customer, admin):
    lost = await place(client, customer, item(SMARTPHONE, 2))
    await place(client, customer)  # young, pending: not an orphan
    await asyncio.sleep(0.3)
    await connections.get(DB).execute_query("UPDATE orders SET created_at = now() WHERE id <> $1", [lost["_id"]])
    assert (await client.get(f"{ORDERS}/orphans", headers=admin)).json() == []  # none published again yet

    assert await republish_orphans(AFTER) == 1
    response = await client.get(f"{ORDERS}/orphans", headers=admin)
    assert response.status_code == 200
    [orphan] = response.json()
    assert (orphan["_id"], orphan["status"], orphan["items"][0]["quantity"]) == (lost["_id"], "pending", 2)
    assert orphan["placed_again_at"] >= orphan["created_at"]

    assert (await client.get(f"{ORDERS}/orphans", headers=customer)).status_code == 403
    assert (await client.get(f"{ORDERS}/orphans")).status_code == 401
    assert (await client.get(f"{ORDERS}/orphans?limit=0", headers=admin)).status_code == 422
