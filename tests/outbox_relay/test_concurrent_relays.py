"""Several relays (and several drain loops in each) share one outbox: nothing lost, each effect once, in order."""

import asyncio

from tests.outbox_relay.conftest import assert_exactly_once_in_order, commit_events, thing_happened
from tests.support import wait_until


async def test_two_relays_deliver_everything_once_in_order(ledger, topic, start_relay, start_consumer):
    await start_relay(relay_workers=3, relay_batch_size=40)
    await start_relay(relay_workers=3, relay_batch_size=40)
    await start_consumer()

    async def writer(aggregate: str) -> None:
        for seq in range(0, 100, 4):
            await commit_events([thing_happened(topic, aggregate, seq + i) for i in range(4)])

    await asyncio.gather(*(writer(f"agg-{n}") for n in range(30)))
    await wait_until(lambda: _applied_at_least(ledger, 3000), timeout=60)
    await asyncio.sleep(0.3)
    await assert_exactly_once_in_order(ledger, {f"agg-{n}": 100 for n in range(30)})


async def _applied_at_least(ledger, expected: int) -> bool:
    return await ledger.fetchval("SELECT count(*) FROM applied") >= expected
