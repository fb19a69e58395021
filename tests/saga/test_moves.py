"""A saga's move reads once and writes once (saga/moves.py), and writes only what it changed; concurrent moves
of one saga still see each other's steps."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from common.consumer import ReceivedEvent
from saga.models import Saga, SagaState, SagaStep
from saga.moves import lock_due_sagas
from tests.saga.conftest import (
    ITEMS,
    cause,
    commands,
    orchestrator,
    order_placed,
    place,
    relay_publishes,
    run,
    saga_of,
    stock_reserved,
)


class Recorded:
    """A transaction's connection that keeps the statements run on it."""

    def __init__(self, connection: BaseDBAsyncClient) -> None:
        self.connection, self.statements = connection, []

    async def execute_query(self, sql: str, values: list | None = None) -> Any:
        self.statements.append(sql)
        return await self.connection.execute_query(sql, values)

    async def execute_query_dict(self, sql: str, values: list | None = None) -> list[dict]:
        self.statements.append(sql)
        return await self.connection.execute_query_dict(sql, values)

    async def execute_many(self, sql: str, values: list) -> None:
        self.statements.append(sql)  # one round trip: asyncpg pipelines them
        await self.connection.execute_many(sql, values)


async def statements_of(method, *arguments: Any) -> list[str]:
    """The statements of one orchestrator call, in its own transaction as a consumer runs it."""
    async with in_transaction("saga") as connection:
        recorded = Recorded(connection)
        await method(recorded, *arguments, cause())
    return recorded.statements


async def steps_of(order_id: str) -> list[tuple[str, str, int]]:
    steps = await SagaStep.filter(saga_id=order_id).order_by("id")
    return [(step.name.value, step.state.value, step.attempts) for step in steps]


def placed(order_id: str) -> dict:
    return {"order_id": order_id, "user_id": "7", "items": ITEMS, "total_price": 919.99}


@contextlib.asynccontextmanager
async def held_open(method, *arguments: Any) -> AsyncIterator[None]:
    """An orchestrator call whose transaction stays open (its locks held) until the block ends, then commits."""
    done, finish = asyncio.Event(), asyncio.Event()

    async def move() -> None:
        async with in_transaction("saga") as connection:
            await method(connection, *arguments, cause())
            done.set()
            await finish.wait()

    task, started = asyncio.create_task(move()), asyncio.create_task(done.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if task.done():
        await task  # the call failed: its error
    try:
        yield
    finally:
        finish.set()
        await task


async def waits_for_a_lock() -> None:
    for _ in range(500):
        rows = await connections.get("saga").execute_query_dict(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        if rows[0]["n"]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no transaction waits for a lock")


async def test_a_new_saga_is_one_statement(client):
    saga, order_id, placing = orchestrator(), str(uuid.uuid4()), cause()
    async with in_transaction("saga") as connection:
        recorded = Recorded(connection)
        await saga.orders_placed(recorded, [(placed(order_id), placing)])
    assert len(recorded.statements) == 1
    created = await saga_of(order_id)
    assert (created.state, created.user_id, created.paid) == (SagaState.RESERVING, 7, False)
    assert created.created_at == created.updated_at and created.due_at > created.created_at
    assert await steps_of(order_id) == [("reserve", "running", 1)]
    (step,) = await SagaStep.filter(saga_id=order_id)
    (command,) = await connections.get("saga").execute_query_dict(
        "SELECT id, headers->>'causation_id' AS cause FROM outbox WHERE aggregate_id = $1", [order_id]
    )
    assert (command["id"], command["cause"]) == (step.command_id, str(placing.id))
    assert step.started_at == created.created_at


async def test_the_same_order_placed_twice_gives_one_saga_one_step_one_command(client):
    saga = orchestrator()
    order_id = await place(saga)
    first = await saga_of(order_id)
    assert len(await statements_of(order_placed(saga), placed(order_id))) == 1  # another event id: writes nothing
    assert (await saga_of(order_id)).updated_at == first.updated_at
    assert await steps_of(order_id) == [("reserve", "running", 1)]
    assert [event for event, _ in await commands(order_id)] == ["stock.reserve"]


async def test_the_same_order_placed_twice_at_once_gives_one_saga(client):
    saga, order_id = orchestrator(), str(uuid.uuid4())
    async with held_open(order_placed(saga), placed(order_id)):
        second = asyncio.create_task(run(order_placed(saga), placed(order_id)))
        await waits_for_a_lock()  # the second insert waits for the first one's transaction
    await second
    assert await Saga.filter(order_id=order_id).count() == 1
    assert await steps_of(order_id) == [("reserve", "running", 1)]
    assert [event for event, _ in await commands(order_id)] == ["stock.reserve"]


async def test_a_move_reads_once_and_writes_once(client):
    saga = orchestrator()
    order_id = await place(saga)
    lock, write = await statements_of(stock_reserved(saga), order_id)
    assert "FOR UPDATE OF sagas" in lock and write.startswith("WITH saga AS (UPDATE sagas")
    assert await steps_of(order_id) == [("reserve", "succeeded", 1), ("await_payment", "running", 0)]
    assert len(await statements_of(stock_reserved(saga), order_id)) == 1  # a duplicate reply: read, nothing written


def received(event_type: str, topic: str) -> ReceivedEvent:
    """A consumed message with a correlation id of its own."""
    return replace(cause(event_type, topic), correlation_id=str(uuid.uuid4()))


async def correlations(order_ids: list[str]) -> dict[str, str]:
    rows = await connections.get("saga").execute_query_dict(
        "SELECT aggregate_id, headers->>'correlation_id' AS id FROM outbox WHERE aggregate_id = ANY($1)", [order_ids]
    )
    return {row["aggregate_id"]: row["id"] for row in rows}


async def test_a_run_of_placed_orders_is_one_round_trip(client):
    saga, order_ids = orchestrator(), [str(uuid.uuid4()) for _ in range(3)]
    events = [received("order.placed", "order-events") for _ in order_ids]
    runs = [(placed(order_id), event) for order_id, event in zip(order_ids, events, strict=True)]
    runs.append((placed(order_ids[0]), received("order.placed", "order-events")))  # the first order, placed again
    async with in_transaction("saga") as connection:
        recorded = Recorded(connection)
        await saga.orders_placed(recorded, runs)
    assert len(recorded.statements) == 1
    for order_id in order_ids:
        assert await steps_of(order_id) == [("reserve", "running", 1)]
        assert [event for event, _ in await commands(order_id)] == ["stock.reserve"]
    # Each saga and its command carry the correlation id of the event that placed it.
    expected = {order_id: event.correlation_id for order_id, event in zip(order_ids, events, strict=True)}
    assert await correlations(order_ids) == expected
    assert {(await saga_of(order_id)).correlation_id for order_id in order_ids} == set(expected.values())


async def test_a_run_of_reservations_reads_once_and_writes_in_one_round_trip(client):
    saga = orchestrator()
    order_ids = [await place(saga) for _ in range(3)]
    await Saga.filter(order_id=order_ids[2]).update(paid=True)  # paid first: its reservation confirms at once
    replies = [(order_id, received("stock.reserved", "stock-replies")) for order_id in order_ids]
    replies.append((order_ids[0], received("stock.reserved", "stock-replies")))  # a second reply: changes nothing
    replies.append((str(uuid.uuid4()), received("stock.reserved", "stock-replies")))  # no such saga: ignored
    async with in_transaction("saga") as connection:
        recorded = Recorded(connection)
        await saga.stocks_reserved(recorded, replies)
    lock, awaiting, confirming = recorded.statements  # the two kinds of move, each one round trip
    assert "FOR UPDATE OF sagas" in lock and awaiting.startswith("WITH saga AS (UPDATE sagas")
    assert "INSERT INTO outbox" in confirming and "INSERT INTO outbox" not in awaiting
    for order_id in order_ids[:2]:
        assert await steps_of(order_id) == [("reserve", "succeeded", 1), ("await_payment", "running", 0)]
        assert (await saga_of(order_id)).state == SagaState.AWAITING_PAYMENT
    assert await steps_of(order_ids[2]) == [("reserve", "succeeded", 1), ("confirm", "running", 1)]
    assert [event for event, _ in await commands(order_ids[2])] == ["stock.reserve", "stock.confirm"]
    (confirm,) = await connections.get("saga").execute_query_dict(
        "SELECT headers->>'correlation_id' AS id, headers->>'causation_id' AS cause FROM outbox"
        " WHERE aggregate_id = $1 AND event_type = 'stock.confirm'",
        [order_ids[2]],
    )
    assert (confirm["id"], confirm["cause"]) == (replies[2][1].correlation_id, str(replies[2][1].id))
    (saga_messages,) = await connections.get("saga").execute_query_dict(
        "SELECT count(*) AS n FROM saga_messages WHERE saga_id = $1 AND direction = 'received'", [order_ids[0]]
    )
    assert saga_messages["n"] == 2  # order.placed, and the first reply only


async def test_payment_during_the_reservation_writes_only_paid(client):
    saga = orchestrator()
    order_id = await place(saga)
    before = await saga_of(order_id)
    _, write = await statements_of(saga.order_paid, order_id)
    assert "UPDATE sagas SET paid = $2, updated_at = $3 WHERE" in write
    assert "saga_steps" not in write and "outbox" not in write
    after = await saga_of(order_id)
    assert (after.paid, after.state, after.due_at) == (True, SagaState.RESERVING, before.due_at)
    assert after.updated_at > before.updated_at


async def test_the_timer_reads_its_due_sagas_once_and_writes_each_once(client):
    saga = orchestrator(step_timeout=0.01)
    order_ids = [await place(saga), await place(saga)]
    await relay_publishes()
    await asyncio.sleep(0.05)
    async with in_transaction("saga") as connection:
        recorded = Recorded(connection)
        for move in await lock_due_sagas(recorded, 50):
            await saga.deadline_passed(recorded, move)
    assert len(recorded.statements) == 3
    for order_id in order_ids:
        assert await steps_of(order_id) == [("reserve", "running", 2)]
        assert [event for event, _ in await commands(order_id)] == ["stock.reserve"] * 2


async def test_a_move_that_waited_for_the_lock_sees_the_step_the_move_before_it_left(client):
    # The cancel's read starts while the reservation's move holds the lock; it returns after that move committed,
    # and must abandon the step that move started, not the one it finished.
    saga = orchestrator()
    order_id = await place(saga)
    async with held_open(stock_reserved(saga), order_id):
        cancelling = asyncio.create_task(run(saga.order_cancelled, order_id))
        await waits_for_a_lock()
    await cancelling
    assert (await saga_of(order_id)).state == SagaState.RELEASING
    assert await steps_of(order_id) == [
        ("reserve", "succeeded", 1),
        ("await_payment", "abandoned", 0),
        ("release", "running", 1),
    ]
