"""Inbox dead letters, for operators: the events a consumer set aside (undecodable, or its handler failed
`max_attempts` times), listed, and re-driven once their cause is fixed.

Re-driving sends the stored message back to its topic (same key, so the same partition; same headers, so the same
event id) and deletes the dead letter in one transaction that commits only once the broker has the message. The
consumer then applies it as any other event, or sets it aside again if it still fails. Other consumer groups of
the topic skip it: their inbox has it. (Like the relay's outbox re-drive, the event goes to the end of its
partition, behind events of its aggregate published since.)

The operations service (operations/) serves this through the gateway; `python -m common dead-letters` runs it
against a database directly. Both pass a connection to the service's database.
"""

import json
from typing import Any

from aiokafka import AIOKafkaProducer

from common.database import PgConnection

_FIELDS = 'consumer, event_id, topic, partition, "offset", key, headers, value, error, attempts, dead_at'


async def has_inbox(connection: PgConnection) -> bool:
    """Whether the service of this database consumes events (only those have an inbox)."""
    return bool(await connection.fetchval("SELECT to_regclass('inbox_dead_letter') IS NOT NULL"))


async def inbox_dead_letters(
    connection: PgConnection, limit: int = 100, event_type: str | None = None
) -> list[dict[str, Any]]:
    """The oldest `limit` inbox dead letters (of one event type, when given)."""
    rows = await connection.fetch(
        f"SELECT {_FIELDS} FROM inbox_dead_letter WHERE $2::text IS NULL OR headers->>'event_type' = $2"
        " ORDER BY dead_at LIMIT $1",
        limit,
        event_type,
    )
    return [{**row, "headers": json.loads(row["headers"])} for row in rows]


async def redrive_inbox(
    connection: PgConnection,
    producer: AIOKafkaProducer,
    event_id: str | None = None,
    event_type: str | None = None,
) -> list[str]:
    """Send dead letters (one, those of an event type, or all) back to their topics; the event ids sent. Dead
    letters another re-drive holds are skipped. `producer` should be idempotent, with acks=all."""
    async with connection.transaction():
        letters = await connection.fetch(
            "DELETE FROM inbox_dead_letter WHERE ctid IN (SELECT ctid FROM inbox_dead_letter"
            " WHERE ($1::text IS NULL OR event_id = $1) AND ($2::text IS NULL OR headers->>'event_type' = $2)"
            " ORDER BY dead_at FOR UPDATE SKIP LOCKED)"
            " RETURNING event_id, topic, key, headers, value",
            event_id,
            event_type,
        )
        for letter in letters:
            headers = [(name, str(value).encode()) for name, value in json.loads(letter["headers"]).items()]
            await producer.send_and_wait(
                letter["topic"], letter["value"].encode(), key=(letter["key"] or "").encode() or None, headers=headers
            )
    return [letter["event_id"] for letter in letters]


def redrive_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    """A producer fit for re-driving: idempotent, acknowledged by every in-sync replica."""
    return AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True)
