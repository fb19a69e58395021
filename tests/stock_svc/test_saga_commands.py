"""The saga's stock commands (DESIGN §5): reserve all of an order's items or none, release, confirm; each
applied once per order, a repeat answered with the first reply; every reply on stock-replies keyed by order."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tortoise import connections
from tortoise.transactions import in_transaction

from common.consumer import ReceivedEvent
from common.inbox import first_deliveries
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
from stock_svc.handlers import HANDLERS, lock_key
from stock_svc.inventory import DB
from stock_svc.models import HandledCommand, Reservation, ReservationStatus, StockHistory
from tests.stock_svc.conftest import create_item, deliver, get_item, outbox_events, quantities, received
from tests.support import wait_until


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


async def lock_waiters() -> int:
    """Transactions of this database waiting for an advisory lock."""
    rows = await connections.get(DB).execute_query_dict(
        "SELECT count(*) AS waiting FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    return rows[0]["waiting"]


async def test_the_inbox_statement_waits_for_the_lock_of_its_keys(client):
    event_id = uuid.uuid4()
    holding, finish = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with in_transaction(DB) as connection:
            assert await first_deliveries(connection, "tests", [(event_id, "test.event")], ["key-1", "key-2"])
            holding.set()
            await finish.wait()

    async def record(event: uuid.UUID, keys: list[str]) -> set[uuid.UUID]:
        async with in_transaction(DB) as connection:
            return await first_deliveries(connection, "tests", [(event, "test.event")], keys)

    holder = asyncio.create_task(hold())
    try:
        await holding.wait()
        other = uuid.uuid4()
        assert await asyncio.wait_for(record(other, ["key-3"]), 10) == {other}  # other keys do not wait
        unlocked = uuid.uuid4()
        assert await asyncio.wait_for(record(unlocked, []), 10) == {unlocked}  # nor does an event without a key
        # The same event again, as a second consumer holding the partition for a moment after a rebalance: it waits
        # for the first transaction, then finds the event recorded.
        again = asyncio.create_task(record(event_id, ["key-2", "key-2"]))
        await wait_until(lambda: _waiting(1), timeout=10)
        assert not again.done()
    finally:
        finish.set()
        await holder
    assert await asyncio.wait_for(again, 10) == set()


async def _waiting(count: int) -> bool:
    return await lock_waiters() == count


@asynccontextmanager
async def uncommitted(event: ReceivedEvent) -> AsyncIterator[None]:
    """`event` applied as the consumer applies it, its transaction (and the locks it holds) kept open until the
    block ends."""
    applied, commit = asyncio.Event(), asyncio.Event()

    async def apply() -> None:
        try:
            async with in_transaction(DB) as connection:
                keys = [key] if (key := lock_key(event)) else []
                if await first_deliveries(connection, "tests", [(event.id, event.type)], keys):
                    await HANDLERS[event.type](event, connection)
                applied.set()
                await commit.wait()
        finally:
            applied.set()

    task = asyncio.create_task(apply())
    try:
        await applied.wait()
        yield
    finally:
        commit.set()
        await task


async def test_one_orders_commands_apply_one_transaction_at_a_time(client, admin, user):
    """A release delivered while the order's reserve is applied but not committed (two consumers holding the
    partition during a rebalance) waits for it, then gives back what it held: nothing stays held."""
    await create_item(client, admin, "product-1", 50)
    await create_item(client, admin, "product-2", 50)
    async with uncommitted(reserve_command("order-1", ("product-1", 2), ("product-2", 3))):
        releasing = asyncio.create_task(deliver(order_command(RELEASE_STOCK, "order-1")))
        await wait_until(lambda: _waiting(1), timeout=10)
        assert not releasing.done()
    await releasing
    assert quantities(await get_item(client, user, "product-1")) == (50, 0)
    assert quantities(await get_item(client, user, "product-2")) == (50, 0)
    assert [reply[0] for reply in await replies()] == [STOCK_RESERVED, STOCK_RELEASED]
    assert not await Reservation.filter(status=ReservationStatus.HELD).exists()


async def test_an_admin_reservation_for_an_order_waits_for_the_orders_command(client, admin, user):
    """What a saga command read of the order's reservations cannot change before it commits."""
    await create_item(client, admin, "product-1", 50)
    await deliver(reserve_command("order-1", ("product-1", 5)))
    async with uncommitted(order_command(RELEASE_STOCK, "order-1")):
        body = {"product_id": "product-1", "quantity": 1, "order_id": "order-1"}
        releasing = asyncio.create_task(client.post("/api/v1/inventory/release", json=body, headers=admin))
        await wait_until(lambda: _waiting(1), timeout=10)
        assert not releasing.done()
    assert (await releasing).status_code == 409  # the order holds nothing any more
    assert quantities(await get_item(client, user, "product-1")) == (50, 0)


async def test_concurrent_reserves_and_releases_of_the_same_orders_leave_nothing_held(client, admin, user):
    await create_item(client, admin, "product-1", 1000)
    await create_item(client, admin, "product-2", 1000)
    orders = [f"order-{n}" for n in range(40)]
    commands = []
    for n, order_id in enumerate(orders):
        lines = [("product-1", 1), ("product-2", 2)] if n % 2 else [("product-2", 2), ("product-1", 1)]
        commands += [reserve_command(order_id, *lines), order_command(RELEASE_STOCK, order_id)]
    await asyncio.gather(*(deliver(command) for command in commands))
    assert quantities(await get_item(client, user, "product-1")) == (1000, 0)
    assert quantities(await get_item(client, user, "product-2")) == (1000, 0)
    assert not await Reservation.filter(status=ReservationStatus.HELD).exists()
    per_order: dict[str, list[str]] = {}
    for reply_type, order_id, _ in await replies():
        per_order.setdefault(order_id, []).append(reply_type)
    # Whichever came first: reserved then released, or released then the reserve rejected.
    assert set(map(tuple, per_order.values())) <= {(STOCK_RESERVED, STOCK_RELEASED), (STOCK_RELEASED, STOCK_REJECTED)}
    assert sorted(per_order) == sorted(orders)
