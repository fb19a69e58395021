"""Every committed event reaches the consumer once, in order per aggregate; rolled-back ones never do."""

import asyncio
import random

import pytest
from tortoise.transactions import in_transaction

from common.outbox import write_events
from tests.outbox_relay.conftest import (
    DB,
    applied_count,
    assert_exactly_once_in_order,
    commit_events,
    thing_happened,
)
from tests.support import wait_until


async def test_ten_thousand_events_from_concurrent_transactions_arrive_in_order(
    ledger, topic, start_relay, start_consumer
):
    aggregates, per_aggregate, writers = 200, 50, 20
    await start_relay()
    await start_consumer()

    async def writer(mine: list[str]) -> None:
        # Each writer owns some aggregates and interleaves them; 1 to 3 events per transaction.
        next_seq = dict.fromkeys(mine, 0)
        while next_seq:
            aggregate = random.choice(list(next_seq))
            count = min(random.randint(1, 3), per_aggregate - next_seq[aggregate])
            await commit_events([thing_happened(topic, aggregate, next_seq[aggregate] + i) for i in range(count)])
            next_seq[aggregate] += count
            if next_seq[aggregate] == per_aggregate:
                del next_seq[aggregate]

    names = [f"agg-{n}" for n in range(aggregates)]
    await asyncio.gather(*(writer(names[w::writers]) for w in range(writers)))
    await wait_until(lambda: _count_is(ledger, aggregates * per_aggregate), timeout=120)
    await assert_exactly_once_in_order(ledger, dict.fromkeys(names, per_aggregate))
    assert await ledger.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_a_batch_larger_than_one_broker_batch_arrives_in_order(ledger, topic, start_relay, start_consumer):
    # 500 events of 2 KB for each of two aggregates: about 1 MB per partition in one claim, where one Kafka batch
    # holds 256 KB, so the publisher sends several batches of each partition and must keep them in order.
    await commit_events([thing_happened(topic, f"big-{n % 2}", n // 2, filler="x" * 2048) for n in range(1000)])
    await start_relay(relay_batch_size=1000)
    await start_consumer()
    await wait_until(lambda: _count_is(ledger, 1000), timeout=60)
    await assert_exactly_once_in_order(ledger, {"big-0": 500, "big-1": 500})


async def _count_is(ledger, expected: int) -> bool:
    return await applied_count(ledger) >= expected


async def test_rolled_back_transaction_publishes_nothing(ledger, topic, start_relay, start_consumer):
    await start_relay()
    await start_consumer()
    with pytest.raises(RuntimeError):
        async with in_transaction(DB) as connection:
            await write_events(connection, [thing_happened(topic, "rolled-back", 0)])
            raise RuntimeError("the state change failed")
    await commit_events([thing_happened(topic, "committed", 0)])
    await wait_until(lambda: _count_is(ledger, 1))
    await asyncio.sleep(0.5)  # room for a wrongly published event to arrive too
    assert [tuple(r) for r in await ledger.fetch("SELECT aggregate_id, seq FROM applied")] == [("committed", 0)]


async def test_redelivered_event_changes_nothing(ledger, topic, start_relay, start_consumer):
    """Replaying already-published events (as after a broker restart) leaves each effect applied once."""
    await start_relay()
    await start_consumer()
    await commit_events([thing_happened(topic, "a", seq) for seq in range(5)])
    await wait_until(lambda: _count_is(ledger, 5))
    replayed = await ledger.execute("UPDATE outbox SET published_at = NULL")
    assert replayed == "UPDATE 5"
    await ledger.execute("NOTIFY outbox")
    await wait_until(lambda: _all_published(ledger))
    await commit_events([thing_happened(topic, "a", 5)])
    await wait_until(lambda: _count_is(ledger, 6))
    await assert_exactly_once_in_order(ledger, {"a": 6})


async def _all_published(ledger) -> bool:
    return await ledger.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
