"""The operations API against real stores and a real broker: each outbox's figures, consumer lag with its last move,
outbox and inbox dead letters in one list, their re-drive, and admins only."""

import json
import logging
from datetime import UTC, datetime

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo.asynchronous.database import AsyncDatabase

from common.topics import PARTITIONS, ensure_topics
from tests.operations.conftest import CONSUMING, MISSING, MONGO_DATABASE, OPERATIONS, PUBLISHING, new_id
from tests.support import wait_until


async def add_outbox_rows(connection: asyncpg.Connection, *, unpublished: int, published: int) -> None:
    await connection.execute(
        "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, topic, payload, created_at, published_at)"
        " SELECT gen_random_uuid(), 'order', 'o' || n::text, 'order.placed', 'order-events', '{}',"
        " now() - interval '30 seconds', CASE WHEN n > $1::int THEN now() END"
        " FROM generate_series(1, $1::int + $2::int) AS n",
        unpublished,
        published,
    )


async def add_outbox_dead_letter(connection: asyncpg.Connection, event_type: str = "order.placed") -> str:
    event_id = new_id()
    await connection.execute(
        "INSERT INTO outbox_dead_letter (id, aggregate_type, aggregate_id, event_type, topic, payload, headers,"
        " created_at, attempts, last_error) VALUES ($1, 'order', 'o-dead', $2, 'order-events', '{\"n\": 1}',"
        " '{\"correlation_id\": \"c-1\"}', now(), 10, 'MessageSizeTooLargeError')",
        event_id,
        event_type,
    )
    return event_id


async def add_inbox_dead_letter(connection: asyncpg.Connection, topic: str, event_type: str) -> str:
    event_id = new_id()
    headers = {"event_id": event_id, "event_type": event_type, "aggregate_type": "order", "aggregate_id": "o-9"}
    await connection.execute(
        'INSERT INTO inbox_dead_letter (consumer, event_id, topic, partition, "offset", key, headers, value, error,'
        " attempts) VALUES ('stock_svc', $1, $2, 0, $3, 'o-9', $4::jsonb, $5, 'ValueError: boom', 5)",
        event_id,
        topic,
        hash(event_id) % 1_000_000,
        json.dumps(headers),
        json.dumps({"order_id": "o-9"}),
    )
    return event_id


async def test_only_admins_reach_the_operations_api(client: httpx.AsyncClient, customer, consuming) -> None:
    await add_inbox_dead_letter(consuming, "some-topic", "stock.reserve")
    reads = ("/outboxes", "/consumers", "/dead-letters")
    for path in reads:
        assert (await client.get(OPERATIONS + path)).status_code == 401
        assert (await client.get(OPERATIONS + path, headers=customer)).status_code == 403
    redrive = {"source": "inbox", "store": CONSUMING, "event_type": "stock.reserve"}
    refused = await client.post(f"{OPERATIONS}/dead-letters/redrive", json=redrive, headers=customer)
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert await consuming.fetchval("SELECT count(*) FROM inbox_dead_letter") == 1  # nothing moved


async def test_each_outbox_reports_its_backlog_throughput_and_dead_letters(
    client: httpx.AsyncClient, admin, consuming, publishing, catalog: AsyncDatabase
) -> None:
    await add_outbox_rows(consuming, unpublished=3, published=120)
    await add_outbox_dead_letter(consuming)
    await add_outbox_rows(publishing, unpublished=0, published=0)
    await catalog.outbox.insert_one(
        {"_id": new_id(), "position": 1, "published_at": None, "created_at": datetime.now(UTC), "attempts": 0}
    )

    response = await client.get(f"{OPERATIONS}/outboxes", headers=admin)
    assert response.status_code == 200
    figures = {outbox["store"]: outbox for outbox in response.json()["outboxes"]}
    assert list(figures) == [CONSUMING, PUBLISHING, MISSING, MONGO_DATABASE]  # as OUTBOX_DATABASE_URLS lists them
    busy = figures[CONSUMING]
    assert (busy["reachable"], busy["unpublished"], busy["published_last_minute"]) == (True, 3, 120)
    assert (busy["published_per_second"], busy["dead_letters"]) == (2.0, 1)
    assert 29 <= busy["oldest_unpublished_seconds"] < 120
    assert figures[PUBLISHING] | {"reachable": True} == {
        "store": PUBLISHING,
        "reachable": True,
        "unpublished": 0,
        "oldest_unpublished_seconds": 0.0,
        "published_last_minute": 0,
        "published_per_second": 0.0,
        "dead_letters": 0,
    }
    assert figures[MISSING]["reachable"] is False
    assert "does not exist" in figures[MISSING]["error"]
    assert (figures[MONGO_DATABASE]["unpublished"], figures[MONGO_DATABASE]["dead_letters"]) == (1, 0)


async def test_outbox_and_inbox_dead_letters_are_listed_together_and_redriven(
    client: httpx.AsyncClient, admin, consuming, publishing, catalog: AsyncDatabase, kafka_bootstrap: str, caplog
) -> None:
    topic = f"ops-{new_id()[:8]}"
    await ensure_topics(kafka_bootstrap, (topic,))
    outbox_letter = await add_outbox_dead_letter(publishing, "order.paid")
    inbox_letters = [await add_inbox_dead_letter(consuming, topic, "stock.reserve") for _ in range(2)]
    mongo_letter = new_id()
    await catalog.outbox_dead_letter.insert_one(
        {
            "_id": mongo_letter,
            "aggregate_type": "product",
            "aggregate_id": "p-1",
            "event_type": "product.created",
            "topic": "product-events",
            "payload": {"name": "Lamp"},
            "headers": {},
            "created_at": datetime.now(UTC),
            "attempts": 10,
            "last_error": "too big",
            "dead_at": datetime.now(UTC),
        }
    )

    listed = await client.get(f"{OPERATIONS}/dead-letters", headers=admin)
    assert listed.status_code == 200
    body = listed.json()
    assert body["unreachable"] == [MISSING]
    letters = {letter["event_id"]: letter for letter in body["dead_letters"]}
    assert set(letters) == {outbox_letter, *inbox_letters, mongo_letter}
    outbox = letters[outbox_letter]
    assert (outbox["source"], outbox["store"], outbox["event_type"], outbox["aggregate_id"]) == (
        "outbox",
        PUBLISHING,
        "order.paid",
        "o-dead",
    )
    assert (outbox["payload"], outbox["headers"], outbox["error"], outbox["attempts"]) == (
        {"n": 1},
        {"correlation_id": "c-1"},
        "MessageSizeTooLargeError",
        10,
    )
    inbox = letters[inbox_letters[0]]
    assert (inbox["source"], inbox["store"], inbox["consumer"], inbox["topic"]) == (
        "inbox",
        CONSUMING,
        "stock_svc",
        topic,
    )
    assert (inbox["event_type"], inbox["aggregate_id"], inbox["payload"]) == (
        "stock.reserve",
        "o-9",
        {"order_id": "o-9"},
    )
    assert letters[mongo_letter]["store"] == MONGO_DATABASE
    only = await client.get(f"{OPERATIONS}/dead-letters", params={"event_type": "stock.reserve"}, headers=admin)
    assert {letter["event_id"] for letter in only.json()["dead_letters"]} == set(inbox_letters)

    # One outbox dead letter goes back into its outbox, attempts reset, to be published again.
    caplog.set_level(logging.WARNING, logger="operations.routes")
    one = {"source": "outbox", "store": PUBLISHING, "event_id": outbox_letter}
    assert (await client.post(f"{OPERATIONS}/dead-letters/redrive", json=one, headers=admin)).json() == {"redriven": 1}
    row = await publishing.fetchrow("SELECT attempts, published_at FROM outbox WHERE id = $1", outbox_letter)
    assert (row["attempts"], row["published_at"]) == (0, None)
    assert "admin 7 re-drove 1 outbox dead letters of ops_publishing" in caplog.text

    # Every inbox dead letter of a type goes back to its topic, with its headers (so its event id).
    of_type = {"source": "inbox", "store": CONSUMING, "event_type": "stock.reserve"}
    assert (await client.post(f"{OPERATIONS}/dead-letters/redrive", json=of_type, headers=admin)).json() == {
        "redriven": 2
    }
    assert await event_ids_on(kafka_bootstrap, topic) == set(inbox_letters)
    left = (await client.get(f"{OPERATIONS}/dead-letters", headers=admin)).json()["dead_letters"]
    assert [letter["event_id"] for letter in left] == [mongo_letter]

    mongo_one = {"source": "outbox", "store": MONGO_DATABASE, "event_id": mongo_letter}
    assert (await client.post(f"{OPERATIONS}/dead-letters/redrive", json=mongo_one, headers=admin)).json() == {
        "redriven": 1
    }
    assert await catalog.outbox.count_documents({"_id": mongo_letter}) == 1


async def test_a_redrive_names_one_letter_or_one_type_of_a_known_store(client: httpx.AsyncClient, admin) -> None:
    async def redrive(body: dict) -> httpx.Response:
        return await client.post(f"{OPERATIONS}/dead-letters/redrive", json=body, headers=admin)

    neither = await redrive({"source": "outbox", "store": PUBLISHING})
    assert (neither.status_code, neither.json()["error"]) == (422, "validation_failed")
    both = await redrive({"source": "outbox", "store": PUBLISHING, "event_id": new_id(), "event_type": "x"})
    assert both.status_code == 422
    assert (await redrive({"source": "elsewhere", "store": PUBLISHING, "event_type": "x"})).status_code == 422
    unknown = await redrive({"source": "outbox", "store": "nowhere", "event_type": "x"})
    assert (unknown.status_code, unknown.json()["message"]) == (404, "No store named nowhere")
    assert (await redrive({"source": "inbox", "store": PUBLISHING, "event_type": "x"})).status_code == 404
    assert (await redrive({"source": "inbox", "store": MONGO_DATABASE, "event_type": "x"})).status_code == 404
    assert (await redrive({"source": "outbox", "store": PUBLISHING, "event_id": "not-an-id"})).json() == {"redriven": 0}
    away = await redrive({"source": "outbox", "store": MISSING, "event_type": "x"})
    assert (away.status_code, away.json()["error"]) == (503, "unavailable")


async def test_consumer_lag_per_partition_and_when_it_last_moved(
    client: httpx.AsyncClient, admin, kafka_bootstrap: str
) -> None:
    topic, group = f"ops-lag-{new_id()[:8]}", f"ops-group-{new_id()[:8]}"
    await ensure_topics(kafka_bootstrap, (topic,))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for n in range(5):
            await producer.send_and_wait(topic, b"{}", partition=0, key=str(n).encode())
    finally:
        await producer.stop()
    await commit(kafka_bootstrap, group, TopicPartition(topic, 0), 2)

    async def partition() -> dict:
        response = await client.get(f"{OPERATIONS}/consumers", headers=admin)
        assert response.status_code == 200
        [found] = [p for p in response.json()["partitions"] if (p["group"], p["partition"]) == (group, 0)]
        return found

    first = await partition()
    assert (first["topic"], first["committed"], first["end"], first["lag"], first["moved_at"]) == (topic, 2, 5, 3, None)
    await commit(kafka_bootstrap, group, TopicPartition(topic, 0), 5)
    await wait_until(lambda: _moved(partition), timeout=10)
    moved = await partition()
    assert (moved["committed"], moved["lag"]) == (5, 0)


async def _moved(partition) -> bool:
    return (await partition())["moved_at"] is not None


async def commit(bootstrap: str, group: str, partition: TopicPartition, offset: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([partition])
        await consumer.commit({partition: offset})
    finally:
        await consumer.stop()


async def event_ids_on(bootstrap: str, topic: str) -> set[str]:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        ends = await reader.end_offsets(partitions)
        ids: set[str] = set()
        while [p for p in partitions if await reader.position(p) < ends[p]]:
            for records in (await reader.getmany(timeout_ms=500)).values():
                ids |= {dict(record.headers)["event_id"].decode() for record in records}
        return ids
    finally:
        await reader.stop()
