"""Outbox positions are allocated before commit, so rows become visible out of position order. The relay
publishes what is visible and never skips a row that becomes visible late (no high-water mark)."""

import asyncio

import asyncpg

from common.database import asyncpg_dsn
from tests.outbox_relay.conftest import thing_happened
from tests.support import wait_until

INSERT = (
    "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, topic, payload, headers)"
    " VALUES ($1, $2, $3, $4, $5, $6::jsonb, '{}'::jsonb)"
)


async def insert(connection: asyncpg.Connection, topic: str, aggregate: str, seq: int) -> None:
    event = thing_happened(topic, aggregate, seq)
    await connection.execute(
        INSERT, event.id, event.aggregate_type, aggregate, event.event_type, topic, f'{{"seq": {seq}}}'
    )


async def applied(ledger) -> list[tuple[str, int]]:
    return [tuple(row) for row in await ledger.fetch("SELECT aggregate_id, seq FROM applied ORDER BY applied_order")]


async def test_a_row_committed_after_a_later_position_is_still_published(
    ledger, ledger_url, topic, start_relay, start_consumer
):
    await start_relay()
    await start_consumer()
    slow = await asyncpg.connect(asyncpg_dsn(ledger_url))
    fast = await asyncpg.connect(asyncpg_dsn(ledger_url))
    try:
        slow_transaction = slow.transaction()
        await slow_transaction.start()
        await insert(slow, topic, "slow", 0)  # the lower position, still invisible
        await insert(fast, topic, "fast", 0)  # a higher position, committed at once
        await wait_until(lambda: _applied_is(ledger, [("fast", 0)]))
        await slow_transaction.commit()
        await wait_until(lambda: _applied_is(ledger, [("fast", 0), ("slow", 0)]))
    finally:
        await slow.close()
        await fast.close()


async def test_writers_that_lock_the_aggregate_keep_its_events_in_order(
    ledger, ledger_url, topic, start_relay, start_consumer
):
    """The discipline the services follow: change the aggregate's row (locking it), then write the event.
    A second writer of the same aggregate waits for the first to commit, so positions follow commit order."""
    await start_relay()
    await start_consumer()
    await ledger.execute("CREATE TABLE IF NOT EXISTS counters (id text PRIMARY KEY, value int NOT NULL)")
    await ledger.execute("INSERT INTO counters VALUES ('x', 0) ON CONFLICT (id) DO UPDATE SET value = 0")

    async def bump_and_report(pause: float) -> None:
        connection = await asyncpg.connect(asyncpg_dsn(ledger_url))
        try:
            async with connection.transaction():
                value = await connection.fetchval(
                    "UPDATE counters SET value = value + 1 WHERE id = 'x' RETURNING value - 1"
                )
                await insert(connection, topic, "x", value)
                await asyncio.sleep(pause)
        finally:
            await connection.close()

    await asyncio.gather(*(bump_and_report(0.05 if n % 2 else 0.0) for n in range(20)))
    await wait_until(lambda: _applied_count_is(ledger, 20))
    assert await applied(ledger) == [("x", seq) for seq in range(20)]


async def _applied_is(ledger, expected: list[tuple[str, int]]) -> bool:
    return await applied(ledger) == expected


async def _applied_count_is(ledger, expected: int) -> bool:
    return await ledger.fetchval("SELECT count(*) FROM applied") >= expected
