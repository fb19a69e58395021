"""A stand-in service database with an outbox, the relay draining it, and an idempotent consumer whose
effect is a row in `applied` per event handled: duplicates of an effect would show as duplicate rows."""

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import asyncpg
import pytest
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from common.consumer import EventConsumer, ReceivedEvent
from common.database import asyncpg_dsn, attach, ensure_database
from common.inbox import INBOX_DDL, INBOX_DEAD_LETTER_BY_EVENT
from common.outbox import OUTBOX_DDL, Event, write_events
from common.topics import ensure_topics
from outbox_relay.relay import Relay
from outbox_relay.settings import RelaySettings
from tests.outbox_relay.ledger_models import Applied
from tests.support import running_relay

DB = "ledger"

APPLIED_DDL = """
CREATE TABLE IF NOT EXISTS applied (
    consumer text NOT NULL, event_id uuid NOT NULL, aggregate_id text NOT NULL, seq integer NOT NULL,
    applied_order bigserial
);
"""


@pytest.fixture(scope="session")
async def ledger_url(postgres_url: str) -> str:
    url = f"{postgres_url}/ledger"
    await ensure_database(url)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    await connection.execute(OUTBOX_DDL + INBOX_DDL + INBOX_DEAD_LETTER_BY_EVENT + APPLIED_DDL)
    await connection.close()
    ledger_app = {"models": ["tests.outbox_relay.ledger_models"], "default_connection": DB}
    await attach({"connections": {DB: url}, "apps": {DB: ledger_app}})
    return url


@pytest.fixture
async def ledger(ledger_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the clean stand-in database."""
    connection = await asyncpg.connect(asyncpg_dsn(ledger_url))
    # A relay of an earlier test, cancelled in the middle of a claim, has once left its transaction open in this
    # process (idle in transaction, holding the outbox's row locks): TRUNCATE then waited for ever. Such a
    # connection goes; the pools' idle ones stay.
    await connection.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
        " AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
    )
    await connection.execute("TRUNCATE outbox, outbox_dead_letter, inbox, inbox_dead_letter, applied")
    yield connection
    await connection.close()


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    name = f"relay-test-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, (name,))
    return name


def relay_settings(ledger_url: str, kafka_bootstrap: str, **overrides: object) -> RelaySettings:
    return RelaySettings(
        _env_file=None,
        outbox_database_urls=ledger_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        **overrides,
    )


@pytest.fixture
async def start_relay(ledger_url: str, kafka_bootstrap: str) -> AsyncIterator[Callable]:
    """Starts relays in this process (settings overridden per relay); all stop at the end of the test."""
    async with AsyncExitStack() as relays:

        async def start(**overrides: object) -> Relay:
            return await relays.enter_async_context(running_relay([ledger_url], kafka_bootstrap, **overrides))

        yield start


async def record_effect(event: ReceivedEvent, connection: BaseDBAsyncClient) -> None:
    await Applied.create(
        consumer="ledger",
        event_id=event.id,
        aggregate_id=event.aggregate_id,
        seq=event.payload["seq"],
        using_db=connection,
    )


@pytest.fixture
async def start_consumer_on() -> AsyncIterator[Callable]:
    """Starts idempotent consumers of `thing.happened` on any broker and topic; all stop at the end of the test."""
    consumers: list[EventConsumer] = []

    async def start(bootstrap: str, topic: str, handler=None, max_attempts: int = 5) -> EventConsumer:
        consumer = EventConsumer(
            f"ledger-{topic}",
            bootstrap,
            [topic],
            {"thing.happened": handler or record_effect},
            DB,
            max_attempts=max_attempts,
            retry_delay=0.01,
        )
        await consumer.start()
        consumers.append(consumer)
        return consumer

    yield start
    for consumer in consumers:
        await consumer.stop()


@pytest.fixture
def start_consumer(start_consumer_on: Callable, kafka_bootstrap: str, topic: str) -> Callable:
    """Starts an idempotent consumer of the test's topic on the session's broker."""

    async def start(handler=None, max_attempts: int = 5) -> EventConsumer:
        return await start_consumer_on(kafka_bootstrap, topic, handler, max_attempts)

    return start


def thing_happened(topic: str, aggregate_id: str, seq: int, **payload: object) -> Event:
    return Event(topic, "thing.happened", "thing", aggregate_id, {"seq": seq, **payload})


async def commit_events(events: list[Event]) -> None:
    """One transaction for all `events` (the way a service writes its state change and events)."""
    async with in_transaction(DB) as connection:
        await write_events(connection, events)


async def applied_count(ledger: asyncpg.Connection) -> int:
    return await ledger.fetchval("SELECT count(*) FROM applied")


async def assert_exactly_once_in_order(ledger: asyncpg.Connection, expected: dict[str, int]) -> None:
    """Every aggregate's events applied once each, in seq order 0..n-1."""
    rows = await ledger.fetch("SELECT aggregate_id, seq FROM applied ORDER BY applied_order")
    seen: dict[str, list[int]] = {}
    for row in rows:
        seen.setdefault(row["aggregate_id"], []).append(row["seq"])
    assert seen == {aggregate: list(range(count)) for aggregate, count in expected.items()}
