"""The transactional outbox on MongoDB: an event is written in the same transaction as the change it reports.

    async with client.start_session() as session:
        async def change(session):
            await database.products.insert_one(product, session=session)
            await write_event_mongo(database, session, Event(...))
        await session.with_transaction(change)

Documents of `outbox`: `_id` (the event id), `position`, `aggregate_type`, `aggregate_id`, `event_type`, `topic`,
`payload`, `headers`, `created_at`, `published_at` (null until the relay marks it), `attempts`, `last_error`.

`position` comes from the counter document `counters/{_id: "outbox"}`, incremented in the same transaction.
Two transactions that both increment it write-conflict on real MongoDB, so the second one retries after the
first committed (`with_transaction` retries transient errors): positions follow commit order, and the relay
reads in position order. The counter serialises the outbox writers of one database, which suits a catalog.
Transactions need a replica set (a single-node one is enough).
"""

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from common.outbox import Event

OUTBOX = "outbox"
OUTBOX_DEAD_LETTER = "outbox_dead_letter"
COUNTERS = "counters"
OUTBOX_COUNTER = "outbox"


async def next_outbox_position(database: AsyncDatabase, session: AsyncClientSession) -> int:
    """Allocate the next outbox position inside the session's transaction."""
    counter = await database[COUNTERS].find_one_and_update(
        {"_id": OUTBOX_COUNTER},
        {"$inc": {"position": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    assert counter is not None  # upserted
    return int(counter["position"])


async def write_event_mongo(database: AsyncDatabase, session: AsyncClientSession, event: Event) -> None:
    """Add `event` to the outbox in the caller's open transaction on `session`."""
    if not session.in_transaction:
        raise RuntimeError("write_event_mongo must run inside the transaction of the state change")
    position = await next_outbox_position(database, session)
    await database[OUTBOX].insert_one(
        {
            "_id": str(event.id),
            "position": position,
            "aggregate_type": event.aggregate_type,
            "aggregate_id": event.aggregate_id,
            "event_type": event.event_type,
            "topic": event.topic,
            "payload": event.payload,
            "headers": event.headers(),
            "created_at": event.occurred_at,
            "published_at": None,
            "attempts": 0,
            "last_error": None,
        },
        session=session,
    )


async def ensure_outbox_indexes(database: AsyncDatabase) -> None:
    """Create the outbox collections, their indexes and the position counter (idempotent).

    Done up front so that no transaction has to create a collection or race to insert the counter.
    """
    outbox = database[OUTBOX]
    await outbox.create_index([("position", ASCENDING)], unique=True, name="position")
    # Serves both the relay's `published_at: null` ordered by position and the purge's `published_at < t`.
    await outbox.create_index([("published_at", ASCENDING), ("position", ASCENDING)], name="published_at_position")
    await database[OUTBOX_DEAD_LETTER].create_index([("dead_at", ASCENDING)], name="dead_at")
    await database[COUNTERS].update_one({"_id": OUTBOX_COUNTER}, {"$setOnInsert": {"position": 0}}, upsert=True)
