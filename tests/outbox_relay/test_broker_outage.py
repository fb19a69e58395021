"""The broker stops for 10 s: the relay backs off (without dead-lettering anything), then delivers everything."""

import asyncio

from common.topics import ensure_topics
from stack.infra import ServerProcess, broker_command, free_port
from tests.outbox_relay.conftest import (
    assert_exactly_once_in_order,
    commit_events,
    thing_happened,
)
from tests.support import running_relay, wait_until

OUTAGE_SECONDS = 10


async def test_relay_rides_out_a_broker_outage(ledger, ledger_url, servers_dir, start_consumer_on):
    port = free_port()
    broker = ServerProcess("outage-broker", broker_command(port), port, servers_dir / "outage-broker.log").start()
    bootstrap = f"127.0.0.1:{port}"
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

        broker.start()  # same port, empty (in-memory storage): the topic is created again on first use
        await wait_until(lambda: _applied(ledger, 100), timeout=60)
        await asyncio.sleep(0.3)
        await assert_exactly_once_in_order(ledger, {"a": 100})
        assert relay.metrics.failed.labels(relay.outboxes[0].name, "broker")._value.get() > 0
    finally:
        await consumer.stop()  # before the broker goes: its teardown would wait for a broker that is gone


async def _applied(ledger, expected: int) -> bool:
    return await ledger.fetchval("SELECT count(*) FROM applied") >= expected
