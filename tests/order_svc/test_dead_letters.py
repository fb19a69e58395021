"""The inbox's dead letters for admins, on the service's own port (common/service.py, the same for every consuming
service): listed, and re-driven back to their topic; nobody else may see or move them."""

import json
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from tortoise import connections

from common.topics import PARTITIONS, SAGA_EVENTS, ensure_topics
from order_svc.orders import DB


async def set_aside(event_id: str) -> None:
    """A dead letter as the consumer writes one: a saga verdict whose handler kept failing."""
    headers = {"event_id": event_id, "event_type": "saga.rejected", "aggregate_id": "order-1"}
    await connections.get(DB).execute_query(
        'INSERT INTO inbox_dead_letter (consumer, event_id, topic, partition, "offset", key, headers, value, error,'
        " attempts) VALUES ('order_svc', $1, $2, 0, 7, 'order-1', $3::jsonb, $4, 'ValueError: boom', 5)",
        [event_id, SAGA_EVENTS, json.dumps(headers), json.dumps({"order_id": "order-1", "reason": "x"})],
    )


async def test_admins_list_and_redrive_dead_letters(client, admin, kafka_bootstrap):
    await ensure_topics(kafka_bootstrap, (SAGA_EVENTS,))
    event_id = str(uuid.uuid4())
    await set_aside(event_id)

    listed = await client.get("/dead-letters", headers=admin)
    assert listed.status_code == 200
    [letter] = listed.json()
    assert (letter["event_id"], letter["topic"], letter["error"]) == (event_id, SAGA_EVENTS, "ValueError: boom")
    assert letter["headers"]["event_type"] == "saga.rejected"

    redriven = await client.post(f"/dead-letters/redrive?event_id={event_id}", headers=admin)
    assert redriven.status_code == 200
    assert redriven.json() == {"redriven": [event_id]}
    assert (await client.get("/dead-letters", headers=admin)).json() == []
    assert event_id in await event_ids_on(kafka_bootstrap, SAGA_EVENTS)


async def test_only_admins_see_dead_letters(client, customer):
    await set_aside(str(uuid.uuid4()))
    assert (await client.get("/dead-letters")).status_code == 401
    assert (await client.get("/dead-letters", headers=customer)).status_code == 403
    assert (await client.post("/dead-letters/redrive", headers=customer)).status_code == 403
    rows = await connections.get(DB).execute_query_dict("SELECT count(*) AS n FROM inbox_dead_letter")
    assert rows[0]["n"] == 1


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
