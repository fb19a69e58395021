"""Inbox dead letters, for operators: the events a consumer set aside (undecodable, or its handler failed
`max_attempts` times), listed, and re-driven once their cause is fixed.

Re-driving sends the stored message back to its topic (same key, so the same partition; same headers, so the same
event id) and deletes the dead letter in one transaction that commits only once the broker has the message. The
consumer then applies it as any other event, or sets it aside again if it still fails. Other consumer groups of
the topic skip it: their inbox has it. (Like the relay's outbox re-drive, the event goes to the end of its
partition, behind events of its aggregate published since.)

The services serve this at `GET /dead-letters` and `POST /dead-letters/redrive` (admin token; common/service.py);
`python -m common dead-letters` runs it against a database directly.
"""

import json
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from common.database import asyncpg_dsn
from common.topics import started

_FIELDS = 'consumer, event_id, topic, partition, "offset", key, headers, value, error, attempts, dead_at'


async def dead_letters(database_url: str, limit: int = 100) -> list[dict[str, Any]]:
    """The oldest `limit` inbox dead letters of the service whose database this is."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await connection.fetch(f"SELECT {_FIELDS} FROM inbox_dead_letter ORDER BY dead_at LIMIT $1", limit)
    finally:
        await connection.close()
    return [{**row, "headers": json.loads(row["headers"])} for row in rows]


async def redrive(database_url: str, bootstrap_servers: str, event_id: str | None) -> list[str]:
    """Send one dead letter (`event_id`), or all, back to their topics; the event ids sent. Dead letters another
    re-drive holds are skipped."""
    producer = await started(
        lambda: AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True)
    )
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with connection.transaction():
            letters = await connection.fetch(
                "DELETE FROM inbox_dead_letter WHERE ctid IN (SELECT ctid FROM inbox_dead_letter"
                " WHERE $1::text IS NULL OR event_id = $1 ORDER BY dead_at FOR UPDATE SKIP LOCKED)"
                " RETURNING event_id, topic, key, headers, value",
                event_id,
            )
            for letter in letters:
                headers = [(name, value.encode()) for name, value in json.loads(letter["headers"]).items()]
                await producer.send_and_wait(
                    letter["topic"], letter["value"].encode(), key=letter["key"].encode() or None, headers=headers
                )
    finally:
        await connection.close()
        await producer.stop()
    return [letter["event_id"] for letter in letters]
