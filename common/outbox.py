"""The transactional outbox: an event is written in the same transaction as the state change it reports.

    async with in_transaction("user_svc") as connection:
        user = await User.create(..., using_db=connection)
        await write_event(connection, Event(...))

The row commits or rolls back with the state. A statement-level trigger sends `NOTIFY outbox` so that the
relay wakes within milliseconds of the commit (a notification is delivered only if the transaction commits).
Write the event after the state change: the row lock of the changed aggregate then orders the events of one
aggregate as their transactions commit.
"""

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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


async def write_event(connection: BaseDBAsyncClient, event: Event) -> None:
    """Add `event` to the outbox on `connection`, which must be the caller's open transaction."""
    await connection.execute_query(
        "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, topic, payload, headers, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8)",
        [
            event.id,
            event.aggregate_type,
            event.aggregate_id,
            event.event_type,
            event.topic,
            json.dumps(event.payload, default=str),
            json.dumps(event.headers()),
            event.occurred_at,
        ],
    )
