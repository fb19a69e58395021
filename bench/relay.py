"""Relay throughput (events/s draining a backlog) and commit-to-consume lag at a steady rate.

    python -m bench.relay [--backlog 50000] [--rate 500] [--seconds 10]

The relay runs as its own process (`python -m outbox_relay`), as in production; this process writes the events
(one transaction each for the lag run) and consumes them with a plain Kafka consumer.
"""

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer

from bench.environment import RESULTS, Servers, machine, percentile, run, servers
from common.database import asyncpg_dsn, ensure_database
from common.outbox import OUTBOX_DDL
from common.topics import ensure_topics
from stack.infra import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
# A topic per measurement: the lag's consumer reads its topic from the start, and the backlog drained before
# would otherwise reach it first (50,000 old events ahead of the measured ones: that was a p99 of 200-280 ms).
BACKLOG_TOPIC, LAG_TOPIC = "bench-backlog", "bench-lag"
# Polled every 20 ms while the relay drains: an EXISTS stops at the first row, where count(*) would read the whole
# backlog each time and take PostgreSQL CPU from the relay being measured.
_ANY_UNPUBLISHED = "SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL)"


def relay_process(env: Servers, database_url: str) -> ServerProcess:
    port = free_port()
    environment = {
        "PORT": str(port),
        "OUTBOX_DATABASE_URLS": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": env.kafka_bootstrap,
        "LOG_LEVEL": "WARNING",
    }
    return ServerProcess(
        "relay", [sys.executable, "-m", "outbox_relay"], port, env.directory / "relay.log", env=environment, cwd=ROOT
    )


async def prepare(env: Servers, topic: str) -> tuple[str, asyncpg.Connection]:
    url = f"{env.postgres_url}/bench_relay"
    await ensure_database(url)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    await connection.execute(OUTBOX_DDL)
    await connection.execute("TRUNCATE outbox")
    await ensure_topics(env.kafka_bootstrap, (topic,))
    return url, connection


async def throughput(env: Servers, backlog: int) -> dict:
    """A backlog written up front, then drained: events per second from the relay's start to the last mark."""
    url, connection = await prepare(env, BACKLOG_TOPIC)
    await connection.execute(
        "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, topic, payload, headers)"
        " SELECT gen_random_uuid(), 'thing', 'agg-' || (n % 1000), 'thing.happened', $1,"
        " jsonb_build_object('seq', n, 'text', repeat('x', 200)), '{}'::jsonb FROM generate_series(1, $2) AS n",
        BACKLOG_TOPIC,
        backlog,
    )
    relay = relay_process(env, url).start()
    # Counted from the relay's readiness, not its process start (interpreter and imports take ~1 s).
    started = time.perf_counter()
    already = await connection.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
    try:
        while await connection.fetchval(_ANY_UNPUBLISHED):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        relay.stop()
        await connection.close()
    drained = backlog - already
    return {"backlog_events": backlog, "seconds": round(elapsed, 3), "events_per_second": round(drained / elapsed)}


async def lag(env: Servers, rate: int, seconds: float) -> dict:
    """Events committed one per transaction at `rate`/s; lag = consumer receipt - commit return."""
    url, connection = await prepare(env, LAG_TOPIC)
    relay = relay_process(env, url).start()
    consumer = AIOKafkaConsumer(
        LAG_TOPIC,
        bootstrap_servers=env.kafka_bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        enable_auto_commit=False,
    )
    await consumer.start()
    committed: dict[str, float] = {}
    lags: list[float] = []
    total = int(rate * seconds)

    async def consume() -> None:
        while len(lags) < total:
            batches = await consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    event_id = dict(record.headers)["event_id"].decode()
                    if event_id in committed:
                        lags.append(now - committed[event_id])

    async def produce() -> None:
        start = time.perf_counter()
        for n in range(total):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            event_id = str(uuid.uuid4())
            await connection.execute(
                "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, topic, payload, headers)"
                " VALUES ($1, 'thing', $2, 'thing.happened', $3, $4::jsonb, '{}'::jsonb)",
                event_id,
                f"agg-{n % 100}",
                LAG_TOPIC,
                json.dumps({"seq": n}),
            )
            committed[event_id] = time.perf_counter()

    try:
        await asyncio.wait_for(asyncio.gather(consume(), produce()), timeout=seconds + 60)
    finally:
        await consumer.stop()
        relay.stop()
        await connection.close()
    milliseconds = [value * 1000 for value in lags]
    return {
        "rate_per_second": rate,
        "events": len(lags),
        "lag_ms_p50": round(percentile(milliseconds, 0.50), 2),
        "lag_ms_p99": round(percentile(milliseconds, 0.99), 2),
        "lag_ms_max": round(max(milliseconds), 2),
    }


async def main(arguments: argparse.Namespace) -> dict:
    with servers() as env:
        return {
            "benchmark": "relay",
            "machine": machine(),
            "throughput": await throughput(env, arguments.backlog),
            "lag": await lag(env, arguments.rate, arguments.seconds),
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    result = run(main(parser.parse_args()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "relay.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
