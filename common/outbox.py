"""The transactional outbox: an event is written in the same transaction as the state change it reports.

    async with in_transaction("user_svc") as connection:
        user = await User.create(..., using_db=connection)
        await write_events(connection, [Event(...)])

A hot path that writes its state in one set-based statement adds its events to that same statement:
`insert_events(first)` is the INSERT of the events passed as the arrays of `event_arrays(events)`.

The row commits or rolls back with the state. A statement-level trigger sends `NOTIFY outbox` so that the
relay wakes within milliseconds of the commit (a notification is delivered only if the transaction commits).
Write the event after the state change: the row lock of the changed aggregate then orders the events of one
aggregate as their transactions commit.
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient

from common.logs import correlation_id

OUTBOX_CHANNEL = "outbox"

OUTBOX_DDL = f"""
CREATE TABLE IF NOT EXISTS outbox (
    id              uuid PRIMARY KEY,
    position        bigserial NOT NULL,
    aggregate_type  text NOT NULL,
    aggregate_id    text NOT NULL,
    event_type      text NOT NULL,
    topic           text NOT NULL,
    payload         jsonb NOT NULL,
    headers         jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (position) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_unpublished_by_aggregate
    ON outbox (aggregate_type, aggregate_id, position) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Rows the relay gave up on after too many failed attempts; an operator lists and re-drives them.
CREATE TABLE IF NOT EXISTS outbox_dead_letter (
    id              uuid PRIMARY KEY,
    aggregate_type  text NOT NULL,
    aggregate_id    text NOT NULL,
    event_type      text NOT NULL,
    topic           text NOT NULL,
    payload         jsonb NOT NULL,
    headers         jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    attempts        integer NOT NULL,
    last_error      text,
    dead_at         timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{OUTBOX_CHANNEL}', current_database());
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
"""

OUTBOX_DROP = "DROP TABLE IF EXISTS outbox, outbox_dead_letter; DROP FUNCTION IF EXISTS outbox_notify();"


@dataclass(frozen=True)
class Event:
    """One fact to publish: `aggregate_id` becomes the Kafka key, so one aggregate's events stay in order."""

    topic: str
    event_type: str
    aggregate_type: str
    aggregate_id: str
    payload: dict[str, Any]
    causation_id: str | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def headers(self) -> dict[str, str]:
        headers = {"correlation_id": correlation_id.get() or str(self.id)}
        if self.causation_id is not None:
            headers["causation_id"] = self.causation_id
        return headers


def event_arrays(events: list[Event]) -> list[list]:
    """The events as the eight parameter arrays that `insert_events` reads: one array per column."""
    return [
        [event.id for event in events],
        [event.aggregate_type for event in events],
        [event.aggregate_id for event in events],
        [event.event_type for event in events],
        [event.topic for event in events],
        [encode_json(event.payload) for event in events],
        [encode_json(event.headers()) for event in events],
        [event.occurred_at for event in events],
    ]


def insert_events(first: int, when: str = "true") -> str:
    """An INSERT of the events given by `event_arrays` as parameters $first to $first+7, if `when` holds (an SQL
    condition: inside a data-modifying CTE, e.g. that the state change it reports happened)."""
    p = [f"${first + i}" for i in range(8)]
    return (
        "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, topic, payload, headers, created_at)"
        " SELECT e.id, e.aggregate_type, e.aggregate_id, e.event_type, e.topic, e.payload::jsonb, e.headers::jsonb,"
        f" e.created_at FROM unnest({p[0]}::uuid[], {p[1]}::text[], {p[2]}::text[], {p[3]}::text[], {p[4]}::text[],"
        f" {p[5]}::text[], {p[6]}::text[], {p[7]}::timestamptz[]) WITH ORDINALITY"
        " AS e (id, aggregate_type, aggregate_id, event_type, topic, payload, headers, created_at, n)"
        f" WHERE {when} ORDER BY e.n"  # positions follow the list: one aggregate's events stay in order
    )


async def write_events(connection: BaseDBAsyncClient, events: list[Event]) -> None:
    """Add `events` to the outbox on `connection`, which must be the caller's open transaction: one statement."""
    if events:
        await connection.execute_query(insert_events(1), event_arrays(events))


def encode_json(value: Any) -> str:
    """JSON text of a payload; values JSON has no type for (Decimal, datetime, UUID) as their str()."""
    return orjson.dumps(value, default=str).decode()
