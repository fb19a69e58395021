"""The inbox (processed messages) of an idempotent consumer: `(consumer, event_id)` recorded in the same
transaction as the handler's effect, so a redelivered event changes nothing."""

import uuid

from tortoise.backends.base.client import BaseDBAsyncClient

INBOX_DDL = """
CREATE TABLE IF NOT EXISTS inbox (
    consumer      text NOT NULL,
    event_id      uuid NOT NULL,
    event_type    text NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Events a consumer gave up on (undecodable, or the handler failed too often); listed and re-driven by hand.
CREATE TABLE IF NOT EXISTS inbox_dead_letter (
    consumer      text NOT NULL,
    event_id      text NOT NULL,
    topic         text NOT NULL,
    partition     integer NOT NULL,
    "offset"      bigint NOT NULL,
    key           text,
    headers       jsonb NOT NULL,
    value         text NOT NULL,
    error         text NOT NULL,
    attempts      integer NOT NULL,
    dead_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition, "offset")
);
"""

INBOX_DROP = "DROP TABLE IF EXISTS inbox, inbox_dead_letter;"


async def first_deliveries(
    connection: BaseDBAsyncClient, consumer: str, events: list[tuple[uuid.UUID, str]]
) -> set[uuid.UUID]:
    """Record the events (id, type) as processed by `consumer`; the ids that were not recorded before (apply
    those, skip the rest). One statement for the whole batch."""
    rows = await connection.execute_query_dict(
        "INSERT INTO inbox (consumer, event_id, event_type)"
        " SELECT $1, event_id, event_type FROM unnest($2::uuid[], $3::text[]) AS batch (event_id, event_type)"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        [consumer, [event_id for event_id, _ in events], [event_type for _, event_type in events]],
    )
    return {row["event_id"] for row in rows}
