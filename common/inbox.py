"""The inbox (processed messages) of an idempotent consumer: `(consumer, event_id)` recorded in the same
transaction as the handler's effect, so a redelivered event changes nothing."""

import uuid
from collections.abc import Collection

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

# Dead letters keyed by event, not by position: a topic recreated starts its offsets again, and the dead letter of a
# new event at an old position was dropped as a duplicate. A message that cannot be decoded is named by its position
# and its broker timestamp (consumer.py): the event id it may claim is not to be trusted. Earlier rows without an id
# get their position as one; of rows sharing an id, the latest stays.
INBOX_DEAD_LETTER_BY_EVENT = """
UPDATE inbox_dead_letter SET event_id = topic || '/' || partition || '/' || "offset" WHERE event_id = '';
DELETE FROM inbox_dead_letter AS older USING inbox_dead_letter AS newer
WHERE older.consumer = newer.consumer AND older.event_id = newer.event_id
  AND (older.dead_at, older.ctid) < (newer.dead_at, newer.ctid);
ALTER TABLE inbox_dead_letter DROP CONSTRAINT inbox_dead_letter_pkey, ADD PRIMARY KEY (consumer, event_id);
"""
INBOX_DEAD_LETTER_BY_POSITION = """
ALTER TABLE inbox_dead_letter DROP CONSTRAINT inbox_dead_letter_pkey,
    ADD PRIMARY KEY (consumer, topic, partition, "offset");
"""


_RECORD = """
INSERT INTO inbox (consumer, event_id, event_type)
SELECT $1, event_id, event_type FROM unnest($2::uuid[], $3::text[]) AS batch (event_id, event_type)
ON CONFLICT DO NOTHING RETURNING event_id
"""

# The locks come first: the WHERE clause reads `locks` through a scalar subquery, which PostgreSQL runs once, as the
# InitPlan of a one-time filter, before the first row is inserted. They are taken in the order of their lock ids
# (sorted hashes, not keys: two keys may share a hash), one global order, so two batches never wait for each other
# in a cycle; the same key twice in a batch is one lock. The statement's snapshot predates the wait, which is fine:
# it reads nothing but its parameters, and ON CONFLICT checks against the latest committed rows.
_LOCK_AND_RECORD = """
WITH locks AS (
    SELECT count(pg_advisory_xact_lock(lock)) AS taken
    FROM (SELECT DISTINCT hashtext(key) AS lock FROM unnest($4::text[]) AS keys (key) ORDER BY lock) AS sorted
)
INSERT INTO inbox (consumer, event_id, event_type)
SELECT $1, event_id, event_type FROM unnest($2::uuid[], $3::text[]) AS batch (event_id, event_type)
WHERE (SELECT taken FROM locks) IS NOT NULL
ON CONFLICT DO NOTHING RETURNING event_id
"""


async def first_deliveries(
    connection: BaseDBAsyncClient,
    consumer: str,
    events: list[tuple[uuid.UUID, str]],
    lock_keys: Collection[str] = (),
) -> set[uuid.UUID]:
    """Record the events (id, type) as processed by `consumer`; the ids that were not recorded before (apply
    those, skip the rest). One statement for the whole batch.

    With `lock_keys`, the same statement first takes `pg_advisory_xact_lock(hashtext(key))` for each distinct key,
    held until the transaction ends: whatever the handlers do for one key then happens one transaction at a time,
    even while a consumer-group rebalance lets two consumers hold a partition for a moment. In READ COMMITTED every
    later statement of the transaction takes a fresh snapshot, so the handlers see everything committed by the
    transaction that held a lock before."""
    if not lock_keys:
        rows = await connection.execute_query_dict(_RECORD, [consumer, *_columns(events)])
    else:
        rows = await connection.execute_query_dict(_LOCK_AND_RECORD, [consumer, *_columns(events), list(lock_keys)])
    return {row["event_id"] for row in rows}


def _columns(events: list[tuple[uuid.UUID, str]]) -> list[list]:
    return [[event_id for event_id, _ in events], [event_type for _, event_type in events]]
