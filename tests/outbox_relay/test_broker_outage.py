"""The broker stops for 10 s: the relay backs off (without dead-lettering anything), then delivers everything."""

import asyncio

from common.topics import ensure_topics
from stack.infra import ServerProcess
from stack.kafka.nodes import start_cluster
from tests.outbox_relay.conftest import (
    assert_exactly_once_in_order,
    commit_events,
    thing_happened,
)
from tests.support import running_relay, wait_until

OUTAGE_SECONDS = 10


async def test_relay_rides_out_a_broker_outage(ledger, ledger_url, servers_dir, start_consumer_on):
    (broker,), bootstrap = start_cluster(servers_dir / "outage-kafka", servers_dir / "outage-kafka")
    topic = "outage-test"
    await ensure_topics(bootstrap, (topic,))
    try:
        async with running_relay([ledger_url], bootstrap) as relay:
            await run_outage(ledger, relay, broker, await start_consumer_on(bootstrap, topic), topic)
    finally:
        broker.stop()


async def run_outage(ledger, relay, broker: ServerProcess, consumer, topic: str) -> None:
    try:
        await commit_events([thing_happened(topic, "a", seq) for seq in range(50)])
        await wait_until(lambda: _applied(ledger, 50))

        broker.stop()
        await commit_events([thing_happened(topic, "a", seq) for seq in range(50, 100)])
        await asyncio.sleep(OUTAGE_SECONDS)
        assert await ledger.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 50
        assert await ledger.fetchval("SELECT count(*) FROM outbox_dead_letter") == 0

        broker.start()  # on the same port and data
        await wait_until(lambda: _applied(ledger, 100), timeout=60)
        await asyncio.sleep(0.3)
        await assert_exactly_once_in_order(ledger, {"a": 100})
        assert relay.metrics.failed.labels(relay.outboxes[0].name, "broker")._value.get() > 0
    finally:
        await consumer.stop()  # before the broker goes: its teardown would wait for a broker that is gone


async def _applied(ledger, expected: int) -> bool:
    return await ledger.fetchval("SELECT count(*) FROM applied") >= expected
