"""stock_svc's purges (stock_svc/retention.py) delete what nothing needs and keep what is still needed: every
supply row and each item's latest history row (the quantities still add up from what is left), the inbox and the
applied commands younger than their retention."""

import uuid

from tortoise import connections

from common.messages import CONFIRM_STOCK, RELEASE_STOCK, RESERVE_STOCK
from common.retention import inbox_purge, purge
from stock_svc.inventory import DB
from stock_svc.retention import stock_purges
from tests.stock_svc.conftest import create_item, deliver, get_item, quantities, received


def command(kind: str, order_id: str, product_id: str = "p-1"):
    payload = {"order_id": order_id}
    if kind == RESERVE_STOCK:
        payload["items"] = [{"product_id": product_id, "quantity": 2}]
    return received(kind, payload, order_id)


async def age(table: str, column: str, days: int) -> None:
    await connections.get(DB).execute_query(f"UPDATE {table} SET {column} = {column} - make_interval(days => {days})")


async def rows(sql: str) -> list[dict]:
    return await connections.get(DB).execute_query_dict(sql)


async def test_old_history_goes_but_supplies_and_each_items_latest_row_stay(client, admin):
    await create_item(client, admin, "p-1", 100)
    sold, released = str(uuid.uuid4()), str(uuid.uuid4())
    for event in (command(RESERVE_STOCK, sold), command(CONFIRM_STOCK, sold)):
        await deliver(event)
    for event in (command(RESERVE_STOCK, released), command(RELEASE_STOCK, released)):
        await deliver(event)
    adjusted = await client.post(
        "/api/v1/inventory/adjust", json={"product_id": "p-1", "quantity_change": 5}, headers=admin
    )
    assert adjusted.status_code == 200
    await deliver(command(RESERVE_STOCK, str(uuid.uuid4())))  # the latest row is a reservation
    await age("stock_history", "created_at", 91)
    await age("handled_commands", "handled_at", 15)
    await age("inbox", "processed_at", 15)
    await create_item(client, admin, "p-2", 10)
    young = str(uuid.uuid4())
    await deliver(command(RESERVE_STOCK, young, "p-2"))  # stays: younger than every retention

    deleted = await purge(DB, [inbox_purge(14), *stock_purges(14, 90)])
    assert deleted == {"inbox": 5, "handled_commands": 5, "stock_history": 4}
    left = await rows(
        "SELECT type, change, available_after, reserved_after FROM stock_history"
        " WHERE item_id = (SELECT id FROM inventory_items WHERE product_id = 'p-1') ORDER BY id"
    )
    assert [row["type"] for row in left] == ["created", "adjusted", "reserved"]
    supplied = sum(row["change"] for row in left if row["type"] in ("created", "updated", "adjusted"))
    item = await get_item(client, admin, "p-1")
    available, reserved = quantities(item)
    assert available + reserved + 2 == supplied  # 2 sold: the quantities still add up to the supplies
    assert (left[-1]["available_after"], left[-1]["reserved_after"]) == (available, reserved)
    assert [row["order_id"] for row in await rows("SELECT order_id FROM handled_commands")] == [young]
    assert len(await rows("SELECT 1 FROM inbox")) == 1
