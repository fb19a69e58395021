"""What an operator uses on the relay: metrics, readiness, purge, and the replay command."""

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from outbox_relay.app import create_relay_app
from outbox_relay.postgres_outbox import PostgresOutbox
from tests.outbox_relay.conftest import commit_events, relay_settings, thing_happened
from tests.support import serving, wait_until

ROOT = Path(__file__).resolve().parents[2]


async def test_metrics_and_readiness_over_http(ledger, ledger_url, kafka_bootstrap, topic):
    settings = relay_settings(ledger_url, kafka_bootstrap, relay_max_attempts=1)
    async with serving(create_relay_app(settings)) as client:
        await commit_events([thing_happened(topic, "a", 0), thing_happened(topic, "big", 0, blob="x" * 2_000_000)])
        await wait_until(lambda: _published(ledger, 1))
        await wait_until(lambda: _dead(ledger, 1))
        await wait_until(lambda: _ready(client))

        metrics = (await client.get("/metrics")).text
        assert f'relay_published_total{{outbox="ledger",topic="{topic}"}} 1.0' in metrics
        assert 'relay_commit_to_ack_seconds_count{outbox="ledger"} 1.0' in metrics
        assert 'relay_failed_total{kind="record",outbox="ledger"} 1.0' in metrics
        assert (await client.get("/dead-letters")).status_code == 404  # the operations service's now


async def test_purge_removes_only_published_rows_past_retention(ledger, ledger_url):
    await ledger.execute(
        "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, topic, payload, published_at)"
        " SELECT gen_random_uuid(), 't', 'a', 'e', 't', '{}', now() - interval '2 hours'"
        " FROM generate_series(1, 7)"
    )
    await ledger.execute(
        "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, topic, payload, published_at) VALUES"
        " (gen_random_uuid(), 't', 'b', 'e', 't', '{}', now()), (gen_random_uuid(), 't', 'c', 'e', 't', '{}', NULL)"
    )
    outbox = PostgresOutbox(ledger_url)
    await outbox.open()
    try:
        assert await outbox.purge(older_than_seconds=3600, batch=3) == 7
    finally:
        await outbox.close()
    assert await ledger.fetchval("SELECT count(*) FROM outbox") == 2


async def test_replay_command_unmarks_rows_published_since(ledger, ledger_url, kafka_bootstrap):
    await ledger.execute(
        "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, topic, payload, published_at) VALUES"
        " (gen_random_uuid(), 't', 'old', 'e', 't', '{}', now() - interval '3 hours'),"
        " (gen_random_uuid(), 't', 'new', 'e', 't', '{}', now() - interval '10 minutes')"
    )
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    environment = {**os.environ, "OUTBOX_DATABASE_URLS": ledger_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "outbox_relay", "replay", "--since", since],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "ledger: 1 events will be published again" in result.stdout
    unpublished = await ledger.fetch("SELECT aggregate_id FROM outbox WHERE published_at IS NULL")
    assert [row["aggregate_id"] for row in unpublished] == ["new"]


async def _published(ledger, expected: int) -> bool:
    return await ledger.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL") >= expected


async def _dead(ledger, expected: int) -> bool:
    return await ledger.fetchval("SELECT count(*) FROM outbox_dead_letter") >= expected


async def _ready(client) -> bool:
    return (await client.get("/ready")).status_code == 200
