"""The saga's stock commands (DESIGN §5): reserve all of an order's items or none, release, confirm; each
applied once per order, a repeat answered with the first reply; every reply on stock-replies keyed by order."""

import uuid

from common.messages import (
    CONFIRM_STOCK,
    RELEASE_STOCK,
    RESERVE_STOCK,
    STOCK_CONFIRMED,
    STOCK_REJECTED,
    STOCK_RELEASED,
    STOCK_RESERVED,
    STOCK_UPDATED,
)
from common.topics import STOCK_REPLIES
from stock_svc.models import HandledCommand, Reservation, ReservationStatus, StockHistory
from tests.stock_svc.conftest import create_item, deliver, get_item, outbox_events, quantities, received


def reserve_command(order_id: str, *lines: tuple[str, int]):
    items = [{"product_id": product_id, "quantity": quantity} for product_id, quantity in lines]
    return received(RESERVE_STOCK, {"order_id": order_id, "items": items}, order_id)


def order_command(command: str, order_id: str):
    return received(command, {"order_id": order_id}, order_id)


async def replies() -> list[tuple[str, str, dict]]:
    return [
        (e["event_type"], e["aggregate_id"], e["payload"]) for e in await outbox_events() if e["topic"] == STOCK_REPLIES
    ]


async def test_reserve_holds_every_item_of_the_order(client, admin, user):
    await create_item(client, admin, "product-1", 50)
    await create_item(client, admin, "product-2", 100)
    await deliver(reserve_command("order-1", ("product-2", 3), ("product-1", 1), ("product-2", 2)))
    assert quantities(await get_item(client, user, "product-1")) == (49, 1)
    assert quantities(await get_item(client, user, "product-2")) == (95, 5)
    items = [{"product_id": "product-1", "quantity": 1}, {"product_id": "product-2", "quantity": 5}]
    assert await replies() == [(STOCK_RESERVED, "order-1", {"order_id": "order-1", "items": items})]
    [reply] = [e for e in await outbox_events() if e["topic"] == STOCK_REPLIES]
    assert reply["aggregate_type"] == "order"
    history = await StockHistory.filter(type="reserved").order_by("id").values_list("reference", flat=True)
    assert history == ["order-1", "order-1"]


async def test_an_order_whose_second_item_lacks_stock_reserves_nothing(client, admin, user):
    await create_item(client, admin, "product-1", 50)
    await create_item(client, admin, "product-2", 2)
    await deliver(reserve_command("order-1", ("product-1", 1), ("product-2", 3), ("unknown", 1)))
    assert quantities(await get_item(client, user, "product-1")) == (50, 0)
    assert quantities(await get_item(client, user, "product-2")) == (2, 0)
    shortages = [
        {"product_id": "product-2", "requested": 3, "available": 2},
        {"product_id": "unknown", "requested": 1, "available": 0},
    ]
    rejected = {"order_id": "order-1", "reason": "insufficient stock", "shortages": shortages}
    assert await replies() == [(STOCK_REJECTED, "order-1", rejected)]
    assert await Reservation.all().count() == 0
    assert await StockHistory.filter(type="reserved").count() == 0
    assert len(await outbox_events(STOCK_UPDATED)) == 2  # the two creations


async def test_confirm_takes_the_reserved_units_out_of_the_store(client, admin, user):
    await create_item(client, admin, "product-1", 50)
    await deliver(reserve_command("order-1", ("product-1", 2)))
    await deliver(order_command(CONFIRM_STOCK, "order-1"))
    assert quantities(await get_item(client, user, "product-1")) == (48, 0)
    assert (await Reservation.get(order_id="order-1")).status == ReservationStatus.CONFIRMED
    assert (await replies())[-1] == (STOCK_CONFIRMED, "order-1", {"order_id": "order-1"})
    confirmed = await StockHistory.get(type="confirmed")
    assert (confirmed.change, confirmed.reserved_before, confirmed.reserved_after) == (-2, 2, 0)


async def test_release_gives_back_every_unit_of_the_order(client, admin, user):
    await create_item(client, admin, "product-1", 50)
    await create_item(client, admin, "product-2", 100)
    await deliver(reserve_command("order-1", ("product-1", 1), ("product-2", 4)))
    await deliver(reserve_command("order-2", ("product-2", 1)))
    await deliver(order_command(RELEASE_STOCK, "order-1"))
    assert quantities(await get_item(client, user, "product-1")) == (50, 0)
    assert quantities(await get_item(client, user, "product-2")) == (99, 1)  # order-2 still holds its unit
    assert (await replies())[-1] == (STOCK_RELEASED, "order-1", {"order_id": "order-1"})


async def test_releasing_an_order_that_holds_nothing_is_fine_and_a_late_reserve_is_rejected(client, admin, user):
    await create_item(client, admin, "product-1", 50)
    await deliver(order_command(RELEASE_STOCK, "order-1"))
    await deliver(reserve_command("order-1", ("product-1", 1)))
    assert quantities(await get_item(client, user, "product-1")) == (50, 0)
    rejected = {"order_id": "order-1", "reason": "the order's reservation was already released", "shortages": []}
    assert await replies() == [
        (STOCK_RELEASED, "order-1", {"order_id": "order-1"}),
        (STOCK_REJECTED, "order-1", rejected),
    ]


async def test_repeated_commands_get_the_first_reply_and_change_nothing(client, admin, user):
    await create_item(client, admin, "product-1", 5)
    await deliver(reserve_command("order-1", ("product-1", 2)))
    await deliver(reserve_command("order-1", ("product-1", 2)))  # resent by the saga: another event id
    assert quantities(await get_item(client, user, "product-1")) == (3, 2)
    # A repeat is answered from the record even where the answer would now differ.
    await deliver(reserve_command("order-2", ("product-1", 4)))
    restock = {"product_id": "product-1", "quantity_change": 10}
    assert (await client.post("/api/v1/inventory/adjust", json=restock, headers=admin)).status_code == 200
    await deliver(reserve_command("order-2", ("product-1", 4)))
    await deliver(order_command(CONFIRM_STOCK, "order-1"))
    await deliver(order_command(CONFIRM_STOCK, "order-1"))
    await deliver(order_command(RELEASE_STOCK, "order-1"))
    await deliver(order_command(RELEASE_STOCK, "order-1"))
    assert quantities(await get_item(client, user, "product-1")) == (13, 0)
    reserved = {"order_id": "order-1", "items": [{"product_id": "product-1", "quantity": 2}]}
    rejected = {
        "order_id": "order-2",
        "reason": "insufficient stock",
        "shortages": [{"product_id": "product-1", "requested": 4, "available": 3}],
    }
    assert await replies() == [
        (STOCK_RESERVED, "order-1", reserved),
        (STOCK_RESERVED, "order-1", reserved),
        (STOCK_REJECTED, "order-2", rejected),
        (STOCK_REJECTED, "order-2", rejected),
        (STOCK_CONFIRMED, "order-1", {"order_id": "order-1"}),
        (STOCK_CONFIRMED, "order-1", {"order_id": "order-1"}),
        (STOCK_RELEASED, "order-1", {"order_id": "order-1"}),
        (STOCK_RELEASED, "order-1", {"order_id": "order-1"}),
    ]
    assert await StockHistory.filter(type__in=["reserved", "confirmed", "released"]).count() == 2
    assert await HandledCommand.all().count() == 4


async def test_a_reply_names_the_command_that_caused_it(client, admin):
    await create_item(client, admin, "product-1", 5)
    command = reserve_command("order-1", ("product-1", 1))
    await deliver(command)
    [reply] = [e for e in await outbox_events() if e["topic"] == STOCK_REPLIES]
    assert reply["headers"]["causation_id"] == str(command.id)
    assert uuid.UUID(reply["headers"]["correlation_id"])
