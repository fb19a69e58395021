"""A relay killed between publishing and marking: nothing is lost and each effect applies once."""

import asyncio
import os
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from stack.infra import ServerProcess, free_port
from tests.outbox_relay.conftest import assert_exactly_once_in_order, commit_events, thing_happened
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]


def relay_process(
    ledger_url: str, kafka_bootstrap: str, log_dir: Path, module: str = "outbox_relay", **env: str
) -> ServerProcess:
    """The relay's process (`module`: or tests.faulty_relay, with its FAULT_* variables in `env`)."""
    port = free_port()
    command = [sys.executable, "-m", module]
    environment = {
        "PORT": str(port),
        "OUTBOX_DATABASE_URLS": ledger_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "RELAY_WORKERS": "1",
        "RELAY_BATCH_SIZE": "50",
        **env,
    }
    return ServerProcess("relay", command, port, log_dir / f"relay-{port}.log", env=environment, cwd=ROOT)


async def messages_on(kafka_bootstrap: str, topic: str, expected_at_least: int) -> int:
    """How many messages the topic holds (read from the start by a fresh group)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"count-{os.urandom(4).hex()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    count, idle = 0, 0
    try:
        while idle < 4 or count < expected_at_least:
            batch = await consumer.getmany(timeout_ms=250)
            received = sum(len(records) for records in batch.values())
            count, idle = count + received, 0 if received else idle + 1
            if idle > 40:
                break
    finally:
        await consumer.stop()
    return count


async def test_sigkill_after_publishing_before_marking(
    ledger, topic, kafka_bootstrap, ledger_url, servers_dir, start_consumer
):
    await start_consumer()
    doomed = relay_process(
        ledger_url, kafka_bootstrap, servers_dir, "tests.faulty_relay", FAULT_KILL_AFTER_PUBLISH="3"
    ).start()
    await commit_events([thing_happened(topic, f"agg-{n % 10}", n // 10) for n in range(500)])
    await asyncio.to_thread(doomed.process.wait, 60)
    assert doomed.process.returncode == -9  # killed by its fault, mid-flight
    marked = await ledger.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
    assert marked < 500

    survivor = relay_process(ledger_url, kafka_bootstrap, servers_dir).start()
    try:
        await wait_until(lambda: _applied_at_least(ledger, 500), timeout=60)
        await asyncio.sleep(0.5)
        await assert_exactly_once_in_order(ledger, {f"agg-{n}": 50 for n in range(10)})
        # The batch in flight at the kill went out twice; the inbox absorbed the copies.
        assert await messages_on(kafka_bootstrap, topic, 500) > 500
    finally:
        survivor.stop()


async def _applied_at_least(ledger, expected: int) -> bool:
    return await ledger.fetchval("SELECT count(*) FROM applied") >= expected
