"""The relay drains a MongoDB outbox (catalog_svc's kind) into Kafka: in position order per aggregate, with the
envelope headers, one relay at a time through the lease, poison records dead-lettered.

The events are written by one writer at a time: nx-27017 does not isolate concurrent transactions.
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from common.mongo_outbox import ensure_outbox_indexes, write_event_mongo
from common.outbox import Event
from outbox_relay.mongo_outbox import MongoOutbox
from outbox_relay.publisher import Publisher
from outbox_relay.records import Failure
from outbox_relay.relay import Relay
from outbox_relay.settings import RelaySettings
from tests.outbox_relay.conftest import thing_happened
from tests.support import wait_until

ENVELOPE = {"event_id", "event_type", "aggregate_type", "aggregate_id", "correlation_id", "occurred_at"}


@pytest.fixture
async def outbox_url(mongo_url: str) -> str:
    """A fresh database of the MongoDB-wire server, named in the URL as OUTBOX_MONGO_URL names it."""
    return mongo_url.replace("/?", f"/outbox_{uuid.uuid4().hex[:8]}?")


@pytest.fixture
async def mongo(outbox_url: str) -> AsyncIterator[AsyncMongoClient]:
    client = AsyncMongoClient(outbox_url, tz_aware=True)
    await ensure_outbox_indexes(client.get_default_database())
    yield client
    await client.close()


class Relays:
    """Relays on one MongoDB outbox, each in its own task; `stop` ends one early, the rest end with the test."""

    def __init__(self, outbox_url: str, kafka_bootstrap: str) -> None:
        self.outbox_url = outbox_url
        self.kafka_bootstrap = kafka_bootstrap
        self.running: dict[Relay, asyncio.Task] = {}

    async def start(self, **overrides: object) -> Relay:
        settings = RelaySettings(
            _env_file=None, kafka_bootstrap_servers=self.kafka_bootstrap, relay_poll_interval=0.5, **overrides
        )
        relay = Relay([MongoOutbox(self.outbox_url)], Publisher(self.kafka_bootstrap), settings)
        for outbox in relay.outboxes:
            await outbox.open()
        await relay.publisher.start()
        self.running[relay] = asyncio.create_task(relay.run())
        return relay

    async def stop(self, relay: Relay) -> None:
        task = self.running.pop(relay)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await relay.publisher.stop()
        for outbox in relay.outboxes:
            await outbox.close()


@pytest.fixture
async def relays(outbox_url: str, kafka_bootstrap: str) -> AsyncIterator[Relays]:
    relays = Relays(outbox_url, kafka_bootstrap)
    yield relays
    for relay in list(relays.running):
        await relays.stop(relay)


@pytest.fixture
async def received(kafka_bootstrap: str, topic: str) -> AsyncIterator[list[ConsumerRecord]]:
    """Every message published to the test's topic, in the order the consumer got them."""
    messages: list[ConsumerRecord] = []
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=100
    )
    await consumer.start()

    async def collect() -> None:
        async for message in consumer:
            messages.append(message)

    collecting = asyncio.create_task(collect())
    yield messages
    collecting.cancel()
    await asyncio.gather(collecting, return_exceptions=True)
    await consumer.stop()


async def write_events(mongo: AsyncMongoClient, events: list[Event]) -> None:
    """One transaction for all `events`, as a service writes a change and its events."""
    database = mongo.get_default_database()

    async def change(session) -> None:
        for event in events:
            await write_event_mongo(database, session, event)

    async with mongo.start_session() as session:
        await session.with_transaction(change)


def headers(message: ConsumerRecord) -> dict[str, str]:
    return {name: value.decode() for name, value in message.headers}


def first_deliveries(messages: list[ConsumerRecord]) -> dict[str, list[int]]:
    """Each aggregate's seq numbers in the order of their first delivery (later copies are duplicates)."""
    seen: set[str] = set()
    order: dict[str, list[int]] = {}
    for message in messages:
        envelope = headers(message)
        if envelope["event_id"] not in seen:
            seen.add(envelope["event_id"])
            order.setdefault(envelope["aggregate_id"], []).append(json.loads(message.value)["seq"])
    return order


def event_ids(messages: list[ConsumerRecord]) -> set[str]:
    return {headers(message)["event_id"] for message in messages}


async def unpublished(database: AsyncDatabase) -> int:
    # find, not count_documents: nx-27017's aggregation ($match) does not match a null field as find does.
    return len([document async for document in database.outbox.find({"published_at": None})])


async def test_events_arrive_in_position_order_with_the_envelope(mongo, topic, relays, received):
    await relays.start()
    written: list[Event] = []
    for seq in range(6):
        batch = [thing_happened(topic, aggregate, seq) for aggregate in ("a", "b", "c")]
        await write_events(mongo, batch)
        written += batch
    await wait_until(lambda: _count_at_least(received, len(written)))

    assert event_ids(received) == {str(event.id) for event in written}
    assert first_deliveries(received) == {"a": list(range(6)), "b": list(range(6)), "c": list(range(6))}
    database = mongo.get_default_database()
    positions = {document["_id"]: document["position"] async for document in database.outbox.find()}
    for partition in {message.partition for message in received}:
        in_partition = [positions[headers(m)["event_id"]] for m in received if m.partition == partition]
        assert in_partition == sorted(in_partition)

    message = received[0]
    envelope = headers(message)
    assert ENVELOPE <= set(envelope)
    event = next(event for event in written if str(event.id) == envelope["event_id"])
    assert message.key == event.aggregate_id.encode()
    assert (envelope["event_type"], envelope["aggregate_type"]) == ("thing.happened", "thing")
    assert envelope["correlation_id"] == str(event.id)  # no request in scope: the event is its own correlation
    assert datetime.fromisoformat(envelope["occurred_at"]).tzinfo is not None
    assert await unpublished(database) == 0
    # find, not count_documents: nx-27017's aggregation ($match) does not compare dates.
    published = [document async for document in database.outbox.find({"published_at": {"$lte": datetime.now(UTC)}})]
    assert len(published) == len(written)


async def _count_at_least(messages: list, expected: int) -> bool:
    return len(event_ids(messages)) >= expected


async def test_two_relays_at_once_deliver_everything_in_order(mongo, topic, relays, received):
    first = await relays.start()
    second = await relays.start()
    aggregates = [f"agg-{n}" for n in range(8)]
    written: list[Event] = []
    for seq in range(30):
        if seq == 15:
            await relays.stop(first)  # possibly mid-batch: the other relay takes over
        for aggregate in aggregates:
            event = thing_happened(topic, aggregate, seq)
            await write_events(mongo, [event])
            written.append(event)
    await wait_until(lambda: _count_at_least(received, len(written)), timeout=60)

    assert event_ids(received) == {str(event.id) for event in written}
    assert first_deliveries(received) == {aggregate: list(range(30)) for aggregate in aggregates}
    assert await unpublished(mongo.get_default_database()) == 0
    [outbox] = second.outboxes
    lease = await mongo.get_default_database().relay_leases.find_one({"_id": "outbox"})
    assert lease["owner"] == outbox.owner


async def test_a_poison_record_is_dead_lettered_and_later_events_flow(mongo, topic, relays, received):
    poison = thing_happened(topic, "p", 0, blob="x" * 1_100_000)  # over the producer's 1 MB request limit
    await write_events(mongo, [poison, thing_happened(topic, "p", 1)])
    await write_events(mongo, [thing_happened(topic, "q", seq) for seq in range(3)])
    relay = await relays.start(relay_max_attempts=3)
    [outbox] = relay.outboxes
    await wait_until(lambda: _count_at_least(received, 4), timeout=60)

    assert first_deliveries(received) == {"q": [0, 1, 2], "p": [1]}
    assert str(poison.id) not in event_ids(received)
    assert (await outbox.stats()).dead_letters == 1
    [letter] = await outbox.dead_letters()
    assert (letter["id"], letter["aggregate_id"], letter["attempts"]) == (str(poison.id), "p", 3)
    assert "MessageSizeTooLarge" in letter["last_error"]
    assert await outbox.pending() == 0


async def test_the_lease_lets_one_relay_claim_at_a_time(mongo, outbox_url, topic):
    holder, other = MongoOutbox(outbox_url), MongoOutbox(outbox_url)
    await holder.open()
    await other.open()
    try:
        await write_events(mongo, [thing_happened(topic, "a", seq) for seq in range(3)])
        async with holder.claim(aggregates=10, limit=10) as batch:
            assert [record.aggregate_id for record in batch.records] == ["a", "a", "a"]
            async with other.claim(aggregates=10, limit=10) as elsewhere:
                assert elsewhere.records == []
        async with other.claim(aggregates=10, limit=10) as elsewhere:
            assert elsewhere.records == []  # the holder renews on every claim; the lease has not lapsed
    finally:
        await holder.close()  # releases the lease
    try:
        async with other.claim(aggregates=10, limit=2) as batch:
            assert [record.payload["seq"] for record in batch.records] == [0, 1]
    finally:
        await other.close()


async def test_settle_marks_counts_and_dead_letters(mongo, outbox_url, topic):
    outbox = MongoOutbox(outbox_url)
    await outbox.open()
    try:
        await write_events(mongo, [thing_happened(topic, "a", 0), thing_happened(topic, "b", 0)])
        async with outbox.claim(aggregates=10, limit=10) as batch:
            ok, bad = batch.records
            assert await batch.settle([ok], [Failure(bad, "too big", False)], max_attempts=2) == 0
        document = await mongo.get_default_database().outbox.find_one({"_id": ok.id})
        assert (document["attempts"], document["published_at"] is not None) == (1, True)

        async with outbox.claim(aggregates=10, limit=10) as batch:
            [again] = batch.records
            assert (again.id, again.attempts) == (bad.id, 1)
            assert await batch.settle([], [Failure(again, "still too big", False)], max_attempts=2) == 1
        [letter] = await outbox.dead_letters()
        assert (letter["id"], letter["attempts"], letter["last_error"]) == (bad.id, 2, "still too big")

        await write_events(mongo, [thing_happened(topic, "c", 0)])
        async with outbox.claim(aggregates=10, limit=10) as batch:
            [record] = batch.records
            assert await batch.settle([], [Failure(record, "broker down", True)], max_attempts=1) == 0
        async with outbox.claim(aggregates=10, limit=10) as batch:
            assert [(r.id, r.attempts) for r in batch.records] == [(record.id, 0)]  # transient: not counted
    finally:
        await outbox.close()


async def test_redrive_puts_a_dead_letter_back_at_the_end_of_the_outbox(mongo, outbox_url, topic):
    outbox = MongoOutbox(outbox_url)
    await outbox.open()
    try:
        await write_events(mongo, [thing_happened(topic, "a", 0)])
        async with outbox.claim(aggregates=10, limit=10) as batch:
            [dead] = batch.records
            assert await batch.settle([], [Failure(dead, "too big", False)], max_attempts=1) == 1
        await write_events(mongo, [thing_happened(topic, "b", 0)])

        assert await outbox.redrive("no-such-event") == 0
        assert await outbox.redrive(event_type="another.type") == 0
        assert await outbox.redrive(dead.id) == 1
        assert (await outbox.stats()).dead_letters == 0
        async with outbox.claim(aggregates=10, limit=10) as batch:
            assert [(r.aggregate_id, r.attempts) for r in batch.records] == [("b", 0), ("a", 0)]
            assert batch.records[1].payload == dead.payload
        assert await outbox.redrive() == 0
    finally:
        await outbox.close()


async def test_replay_and_purge(mongo, outbox_url, topic):
    outbox = MongoOutbox(outbox_url)
    await outbox.open()
    try:
        before = datetime.now(UTC)
        await write_events(mongo, [thing_happened(topic, "a", seq) for seq in range(2)])
        async with outbox.claim(aggregates=10, limit=10) as batch:
            await batch.settle(batch.records, [], 10)
        await write_events(mongo, [thing_happened(topic, "a", 2)])
        stats = await outbox.stats()
        assert (stats.unpublished, stats.published_last_minute, stats.dead_letters) == (1, 2, 0)
        assert stats.oldest_unpublished_seconds >= 0

        assert await outbox.replay(before) == 2
        assert await outbox.pending() == 3
        async with outbox.claim(aggregates=10, limit=10) as batch:
            assert [record.payload["seq"] for record in batch.records] == [0, 1, 2]
            await batch.settle(batch.records[:2], [], 10)

        assert await outbox.purge(3600) == 0
        await asyncio.sleep(1.1)  # nx-27017 compares dates to the second
        assert await outbox.purge(0) == 2  # the published ones; the unpublished one stays
        assert await outbox.pending() == 1
    finally:
        await outbox.close()


async def test_events_need_the_callers_transaction(mongo, topic):
    async with mongo.start_session() as session:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            await write_event_mongo(mongo.get_default_database(), session, thing_happened(topic, "a", 0))


async def test_a_rolled_back_transaction_leaves_no_event(mongo, topic):
    database = mongo.get_default_database()

    async def change(session) -> None:
        await write_event_mongo(database, session, thing_happened(topic, "a", 0))
        raise RuntimeError("the state change failed")

    async with mongo.start_session() as session:
        with pytest.raises(RuntimeError, match="state change failed"):
            await session.with_transaction(change)
    assert await database.outbox.count_documents({}) == 0
