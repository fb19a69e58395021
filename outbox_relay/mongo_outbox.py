"""A MongoDB `outbox` collection (common/mongo_outbox.py) as a source for the relay.

MongoDB has no SKIP LOCKED, so exclusivity comes from a lease: the document `relay_leases/{_id: "outbox"}`
names the relay instance that drains this outbox and when its claim lapses. A relay takes the lease when it
is free or expired and renews it with every claim; the others get empty batches until it lapses (the holder
died) or is released (the holder stopped). Within one relay an asyncio lock keeps the concurrent drain loops
from claiming together. With one drainer reading in `position` (commit) order, every aggregate stays in order.

A lease can lapse while its holder is still publishing (a stall longer than the lease): then two relays may
publish the same records. Delivery is at least once and the consumers' inbox drops the duplicates; each relay
publishes in position order, so the first copy of every event still arrives in order.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument, uri_parser
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from common.mongo_outbox import OUTBOX, OUTBOX_DEAD_LETTER, ensure_outbox_indexes, next_outbox_position
from outbox_relay.records import Failure, OutboxRecord, OutboxStats

log = logging.getLogger(__name__)

LEASES = "relay_leases"
_LEASE_ID = "outbox"

# Server answers meaning "no change streams here" (a standalone server, an unknown stage or command).
_CHANGE_STREAMS_UNSUPPORTED = {40573, 40324, 59, 115}


class MongoOutboxStore:
    """One MongoDB database's outbox as operators see it: its figures, its dead letters, purge and replay. The
    database is the path of the URL (mongodb://host:27017/catalog). The relay's drain (MongoOutbox) adds the change
    stream, the lease and the claim."""

    def __init__(self, mongo_url: str) -> None:
        database = uri_parser.parse_uri(mongo_url)["database"]
        if not database:
            raise ValueError("the outbox's MongoDB URL must name the database, e.g. mongodb://host:27017/catalog")
        self.url = mongo_url
        self.name = database
        self._client: AsyncMongoClient | None = None
        self._database: AsyncDatabase | None = None
        self._opening = asyncio.Lock()

    @property
    def _outbox(self) -> AsyncCollection:
        assert self._database is not None, "open() the outbox first"
        return self._database[OUTBOX]

    @property
    def _dead_letters(self) -> AsyncCollection:
        assert self._database is not None, "open() the outbox first"
        return self._database[OUTBOX_DEAD_LETTER]

    @property
    def is_open(self) -> bool:
        return self._database is not None

    async def open(self) -> None:
        """Connect and create the outbox's collections (idempotent). Fails while MongoDB is unreachable: the
        caller retries."""
        async with self._opening:
            if self._database is not None:
                return
            if self._client is None:
                self._client = AsyncMongoClient(self.url, tz_aware=True, serverSelectionTimeoutMS=5000)
            database = self._client[self.name]
            await ensure_outbox_indexes(database)
            self._database = database

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        self._client = self._database = None

    async def pending(self) -> int:
        return await self._count(OUTBOX, {"published_at": None})

    async def stats(self) -> OutboxStats:
        """Four index lookups (the count command has no way to combine them)."""
        oldest = await self._outbox.find_one({"published_at": None}, {"created_at": 1}, sort=[("position", ASCENDING)])
        now = datetime.now(UTC)
        return OutboxStats(
            unpublished=await self.pending(),
            oldest_unpublished_seconds=max((now - oldest["created_at"]).total_seconds(), 0.0) if oldest else 0.0,
            published_last_minute=await self._count(OUTBOX, {"published_at": {"$gt": now - timedelta(minutes=1)}}),
            dead_letters=await self._count(OUTBOX_DEAD_LETTER, {}),
        )

    async def _count(self, collection: str, query: dict[str, Any]) -> int:
        # The count command, not count_documents (an aggregation): nx-27017's $match does not match a null field
        # the way find does.
        assert self._database is not None, "open() the outbox first"
        return int((await self._database.command("count", collection, query=query))["n"])

    async def purge(self, older_than_seconds: float) -> int:
        """Delete published records older than the retention window."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        result = await self._outbox.delete_many({"published_at": {"$lt": cutoff}})
        return result.deleted_count

    async def replay(self, since: datetime) -> int:
        """Mark records published since `since` unpublished again: the relay publishes them once more."""
        result = await self._outbox.update_many({"published_at": {"$gte": since}}, {"$set": {"published_at": None}})
        return result.modified_count

    async def dead_letters(self, limit: int = 100, event_type: str | None = None) -> list[dict[str, Any]]:
        """The oldest `limit` dead letters (of one event type, when given), payload and headers included."""
        cursor = self._dead_letters.find(_selector(None, event_type)).sort("dead_at", ASCENDING).limit(limit)
        return [{"id": letter.pop("_id"), **letter, "store": self.name} async for letter in cursor]

    async def redrive(self, event_id: str | None = None, event_type: str | None = None) -> int:
        """Move dead letters (one, those of an event type, or all) back into the outbox, at its end, with their
        attempts reset."""
        assert self._client is not None, "open() the outbox first"
        ids = [letter["_id"] async for letter in self._dead_letters.find(_selector(event_id, event_type), {"_id": 1})]
        moved = 0
        for letter_id in ids:  # one transaction each: a letter may be as large as a message
            async with self._client.start_session() as session:
                moved += await session.with_transaction(partial(self._redrive_one, letter_id=letter_id))
        return moved

    async def _redrive_one(self, session: AsyncClientSession, letter_id: str) -> int:
        assert self._database is not None
        letter = await self._dead_letters.find_one_and_delete({"_id": letter_id}, session=session)
        if letter is None:
            return 0  # re-driven meanwhile by another operator
        del letter["dead_at"]
        letter.update(
            position=await next_outbox_position(self._database, session),
            published_at=None,
            attempts=0,
            last_error=None,
        )
        await self._outbox.insert_one(letter, session=session)
        return 1


class MongoOutbox(MongoOutboxStore):
    """The outbox as the relay drains it: one relay at a time, under the lease."""

    lease_seconds = 10.0
    poll_interval = 0.1  # how often to look for new events when the server offers no change stream
    # A change stream read that returns empty sooner than this did not wait on the server (nx-27017 ignores
    # maxAwaitTimeMS): pause before the next read rather than spin. Catalog events are an admin's product changes,
    # rare: at 50 ms the reads cost the idle local stack 3% of a core (relay and nx-27017), at 200 ms under 1%.
    min_stream_wait = 0.2

    def __init__(self, mongo_url: str) -> None:
        super().__init__(mongo_url)
        self.owner = uuid.uuid4().hex  # this relay instance, as the lease names it
        self._claiming = asyncio.Lock()
        self._leading = False
        self._wake = asyncio.Event()
        self._watching = False
        self._watcher: asyncio.Task | None = None

    async def open(self) -> None:
        await super().open()
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch_inserts(), name=f"outbox watch {self.name}")

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        if self._database is not None:
            try:  # hand over at once rather than when the lease expires
                await self._database[LEASES].delete_one({"_id": _LEASE_ID, "owner": self.owner})
            except PyMongoError as error:
                log.warning("could not release the lease on %s: %s", self.name, error)
        await super().close()
        self._watcher = None
        self._leading = False

    async def wait_for_events(self, timeout: float) -> None:
        """Return on the next insert into the outbox, or after `timeout` s (after a short poll interval when
        the server has no change streams)."""
        limit = timeout if self._watching else min(timeout, self.poll_interval)
        try:
            await asyncio.wait_for(self._wake.wait(), limit)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _watch_inserts(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                pipeline = [{"$match": {"operationType": "insert"}}]
                async with await self._outbox.watch(pipeline, max_await_time_ms=1000) as stream:
                    self._watching = True
                    self._wake.set()  # inserts made while no stream was open
                    while True:
                        started = loop.time()
                        if await stream.try_next() is not None:
                            self._wake.set()
                        elif loop.time() - started < self.min_stream_wait:
                            await asyncio.sleep(self.min_stream_wait)
            except OperationFailure as error:
                if error.code in _CHANGE_STREAMS_UNSUPPORTED:
                    log.warning(
                        "no change streams on %s (%s): polling every %s s", self.name, error, self.poll_interval
                    )
                    return
                log.warning("change stream on %s failed, reopening: %s", self.name, error)
            except PyMongoError as error:
                log.warning("change stream on %s failed, reopening: %s", self.name, error)
            finally:
                self._watching = False
            await asyncio.sleep(1.0)

    @asynccontextmanager
    async def claim(self, aggregates: int, limit: int) -> AsyncIterator["MongoBatch"]:
        """The next unpublished records in position order (at most `limit`, of at most `aggregates`
        aggregates), or none when another relay holds the lease. Exclusive until the block ends."""
        assert self._client is not None and self._database is not None, "open() the outbox first"
        async with self._claiming:
            records = await self._next_records(aggregates, limit) if await self._hold_lease() else []
            yield MongoBatch(self._client, self._database, records)

    async def _hold_lease(self) -> bool:
        """Take or renew the lease; False while another relay holds it."""
        assert self._database is not None, "open() the outbox first"
        now = time.time()  # the relays' clocks must agree to well within the lease's length
        try:
            lease = await self._database[LEASES].find_one_and_update(
                {"_id": _LEASE_ID, "$or": [{"owner": self.owner}, {"expires_at": {"$lt": now}}]},
                {"$set": {"owner": self.owner, "expires_at": now + self.lease_seconds}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # the lease exists and is someone else's: the upsert tried to insert it
            lease = None
        leading = lease is not None and lease["owner"] == self.owner
        if leading != self._leading:
            log.info("relay %s %s the outbox lease of %s", self.owner, "took" if leading else "lost", self.name)
            self._leading = leading
        return leading

    async def _next_records(self, aggregates: int, limit: int) -> list[OutboxRecord]:
        records: list[OutboxRecord] = []
        seen: set[tuple[str, str]] = set()
        cursor = self._outbox.find({"published_at": None}).sort("position", ASCENDING).limit(limit)
        async for document in cursor:
            record = _record(document)
            if record.aggregate not in seen:
                if len(seen) == aggregates:
                    continue
                seen.add(record.aggregate)
            records.append(record)
        return records


class MongoBatch:
    def __init__(self, client: AsyncMongoClient, database: AsyncDatabase, records: list[OutboxRecord]) -> None:
        self._client = client
        self._database = database
        self.records = records

    async def settle(self, published: list[OutboxRecord], failed: list[Failure], max_attempts: int) -> int:
        """Mark what the broker acknowledged; count a failure on the rest; dead-letter the hopeless ones.
        Returns how many records were dead-lettered."""
        return await self._settle(published, failed, max_attempts)

    async def _settle(self, published: list[OutboxRecord], failed: list[Failure], max_attempts: int) -> int:
        outbox = self._database[OUTBOX]
        if published:
            # The server's clock, as a date on every server ($set of a client date is stored as text on nx-27017).
            await outbox.update_many(
                {"_id": {"$in": [record.id for record in published]}},
                {"$currentDate": {"published_at": True}, "$inc": {"attempts": 1}},
            )
        counted = [failure for failure in failed if not failure.transient]
        for failure in counted:
            await outbox.update_one(
                {"_id": failure.record.id}, {"$inc": {"attempts": 1}, "$set": {"last_error": failure.error[:2000]}}
            )
        hopeless = [failure.record.id for failure in counted if failure.record.attempts + 1 >= max_attempts]
        if hopeless:
            async with self._client.start_session() as session:
                await session.with_transaction(partial(self._dead_letter, ids=hopeless))
            log.error("dead-lettered outbox records %s", hopeless)
        return len(hopeless)

    async def _dead_letter(self, session: AsyncClientSession, ids: list[str]) -> None:
        outbox = self._database[OUTBOX]
        dead_at = datetime.now(UTC)
        documents = [document async for document in outbox.find({"_id": {"$in": ids}}, session=session)]
        for document in documents:
            del document["position"], document["published_at"]
            document["dead_at"] = dead_at
        if documents:
            await self._database[OUTBOX_DEAD_LETTER].insert_many(documents, session=session)
        await outbox.delete_many({"_id": {"$in": ids}}, session=session)


def _selector(event_id: str | None, event_type: str | None) -> dict[str, str]:
    return {
        **({} if event_id is None else {"_id": event_id}),
        **({} if event_type is None else {"event_type": event_type}),
    }


def _record(document: dict[str, Any]) -> OutboxRecord:
    return OutboxRecord(
        id=document["_id"],
        aggregate_type=document["aggregate_type"],
        aggregate_id=document["aggregate_id"],
        event_type=document["event_type"],
        topic=document["topic"],
        payload=document["payload"],
        headers=document["headers"],
        created_at=document["created_at"],
        attempts=document["attempts"],
    )
