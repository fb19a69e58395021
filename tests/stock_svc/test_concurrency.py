"""No interleaving oversells or drives a quantity negative: row locks order the writers, CHECK constraints back
them up, and items are locked in one order so that multi-item reservations never deadlock."""

import asyncio

import pytest
from tortoise import connections
from tortoise.exceptions import IntegrityError

from common.consumer import ReceivedEvent
from common.messages import RESERVE_STOCK, STOCK_RESERVED
from stock_svc.inventory import DB
from stock_svc.models import ChangeType, Reservation, StockHistory
from tests.stock_svc.conftest import CONSUMER, create_item, deliver, get_item, outbox_events, quantities, received


async def test_200_concurrent_reservations_of_50_units_sell_exactly_50(client, admin, user):
    await create_item(client, admin, "hot-product", 50)

    async def reserve_one(n: int) -> int:
        body = {"product_id": "hot-product", "quantity": 1, "order_id": f"order-{n}"}
        return (await client.post("/api/v1/inventory/reserve", json=body, headers=admin)).status_code

    statuses = await asyncio.gather(*(reserve_one(n) for n in range(200)))
    assert statuses.count(200) == 50
    assert statuses.count(409) == 150
    assert quantities(await get_item(client, user, "hot-product")) == (0, 50)
    assert await Reservation.all().count() == 50
    assert await StockHistory.filter(type=ChangeType.RESERVED).count() == 50


async def test_the_database_refuses_negative_quantities(client, admin):
    await create_item(client, admin, "product-1", 1)
    for statement in (
        "UPDATE inventory_items SET available_quantity = available_quantity - 2",
        "UPDATE inventory_items SET reserved_quantity = -1",
        "UPDATE inventory_items SET reorder_threshold = -1",
    ):
        with pytest.raises(IntegrityError):
            await connections.get(DB).execute_query(statement)


async def test_orders_locking_the_same_products_in_opposite_orders_do_not_deadlock(client, admin, user):
    await create_item(client, admin, "product-a", 60)
    await create_item(client, admin, "product-b", 60)

    def reserve_command(n: int):
        lines = [{"product_id": "product-a", "quantity": 1}, {"product_id": "product-b", "quantity": 1}]
        if n % 2:
            lines.reverse()
        order_id = f"order-{n}"
        return received(RESERVE_STOCK, {"order_id": order_id, "items": lines}, order_id)

    await asyncio.gather(*(deliver(reserve_command(n)) for n in range(80)))
    assert len(await outbox_events(STOCK_RESERVED)) == 60
    assert quantities(await get_item(client, user, "product-a")) == (0, 60)
    assert quantities(await get_item(client, user, "product-b")) == (0, 60)


async def test_batches_of_commands_crossing_over_the_same_products_do_not_deadlock(client, admin, user):
    # Two consumers (two instances) apply batches in one transaction each: one reserves a then b, the other b then
    # a, each command for one product. Without the batch's items locked up front, in one order, they deadlock.
    await create_item(client, admin, "product-a", 100)
    await create_item(client, admin, "product-b", 100)

    def reserve(order_id: str, product_id: str) -> ReceivedEvent:
        return received(
            RESERVE_STOCK, {"order_id": order_id, "items": [{"product_id": product_id, "quantity": 1}]}, order_id
        )

    for n in range(20):
        one = [reserve(f"order-{n}-1a", "product-a"), reserve(f"order-{n}-1b", "product-b")]
        two = [reserve(f"order-{n}-2b", "product-b"), reserve(f"order-{n}-2a", "product-a")]
        await asyncio.gather(CONSUMER.apply(one), CONSUMER.apply(two))
    assert len(await outbox_events(STOCK_RESERVED)) == 80
    assert quantities(await get_item(client, user, "product-a")) == (60, 40)
    assert quantities(await get_item(client, user, "product-b")) == (60, 40)
