"""A rebalance while a consumer applies a fetch: the partition it was applying moves to another member before the
commit. The consumer goes on consuming what it still holds (in a soak, aiokafka's assertion on the moved partition
ended the fetch loop, and its partitions were read by no one while the process lived)."""

import asyncio

from tests.outbox_relay.conftest import applied_count, commit_events, record_effect, thing_happened
from tests.support import wait_until

SPREAD = 16


async def test_a_rebalance_while_a_fetch_is_applied_does_not_end_the_consumer(
    ledger, topic, start_relay, start_consumer
):
    applying, rebalanced = asyncio.Event(), asyncio.Event()

    async def slow_first(event, connection) -> None:
        if not applying.is_set():
            applying.set()
            await rebalanced.wait()  # the fetch loop is inside this fetch while the group rebalances
        await record_effect(event, connection)

    await start_relay()
    # One fetch with records of every partition (16 aggregates, all published before the consumer starts):
    # whichever partitions move, one of them is in the fetch being applied.
    await commit_events([thing_happened(topic, f"slow-{n}", 0) for n in range(SPREAD)])
    await wait_until(lambda: _published(ledger, SPREAD), timeout=30)
    first = await start_consumer(handler=slow_first)
    await asyncio.wait_for(applying.wait(), 30)

    second = await start_consumer()  # the same group: it takes some of the first one's partitions
    await wait_until(lambda: _holds_partitions(second), timeout=60)
    rebalanced.set()

    await wait_until(lambda: _applied(ledger, SPREAD), timeout=30)
    await commit_events([thing_happened(topic, f"after-{n}", 0) for n in range(SPREAD)])
    await wait_until(lambda: _applied(ledger, 2 * SPREAD), timeout=60)
    assert not first.task.done() and not second.task.done()


async def _holds_partitions(consumer) -> bool:
    return bool(consumer._kafka.assignment())


async def _published(ledger, expected: int) -> bool:
    return await ledger.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL") >= expected


async def _applied(ledger, expected: int) -> bool:
    return await applied_count(ledger) >= expected
