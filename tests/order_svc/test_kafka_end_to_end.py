"""Through the broker: a product event produced with the envelope headers (as the relay publishes them) reaches
the price read model, the order placed at that price leaves through the real relay as order.placed, and the
saga's verdict on saga-events rejects the order."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.consumer import EventConsumer
from common.messages import ORDER_PLACED, ORDER_REJECTED, PRODUCT_CREATED, SAGA_REJECTED
from common.topics import ORDER_EVENTS, PARTITIONS, PRODUCT_EVENTS, SAGA_EVENTS, ensure_topics
from order_svc.handlers import order_consumers
from order_svc.models import ProductPrice
from outbox_relay.postgres_outbox import PostgresOutbox
from outbox_relay.publisher import Publisher
from outbox_relay.relay import Relay
from outbox_relay.settings import RelaySettings
from tests.order_svc.conftest import ORDERS, SHIPPING_ADDRESS, SMARTPHONE, get_order

Publish = Callable[[str, str, str, dict], Awaitable[None]]


@pytest.fixture(scope="module")
async def consumers(order_app_client, order_settings, kafka_bootstrap) -> AsyncIterator[list[EventConsumer]]:
    """order_svc's consumers, for this module's tests only (joining a group takes the broker seconds)."""
    await ensure_topics(kafka_bootstrap, (PRODUCT_EVENTS, SAGA_EVENTS, ORDER_EVENTS))
    running = order_consumers(order_settings)
    await asyncio.gather(*(consumer.start() for consumer in running))
    yield running
    await asyncio.gather(*(consumer.stop() for consumer in running))


@pytest.fixture
async def relay(client, order_settings, kafka_bootstrap) -> AsyncIterator[Relay]:
    """The relay draining order_svc's outbox."""
    settings = RelaySettings(
        _env_file=None, outbox_database_urls=order_settings.database_url, kafka_bootstrap_servers=kafka_bootstrap
    )
    relay = Relay([PostgresOutbox(order_settings.database_url)], Publisher(kafka_bootstrap), settings)
    for outbox in relay.outboxes:
        await outbox.open()
    await relay.publisher.start()
    task = asyncio.create_task(relay.run())
    yield relay
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await relay.publisher.stop()
    for outbox in relay.outboxes:
        await outbox.close()


@pytest.fixture
async def publish(kafka_bootstrap) -> AsyncIterator[Publish]:
    """Produce an event as the relay would: JSON value, key the aggregate id, the envelope in headers."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=False)
    await producer.start()

    async def send(topic: str, event_type: str, key: str, payload: dict) -> None:
        headers = {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "aggregate_id": key,
            "correlation_id": str(uuid.uuid4()),
            "occurred_at": datetime.now(UTC).isoformat(),
        }
        await producer.send_and_wait(
            topic,
            json.dumps(payload).encode(),
            key=key.encode(),
            headers=[(name, value.encode()) for name, value in headers.items()],
        )

    yield send
    await producer.stop()


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


async def messages_for(kafka_bootstrap: str, topic: str, key: str, count: int) -> list[tuple[dict, dict]]:
    """The first `count` (headers, payload) published on `topic` under `key` (the topic holds others too)."""
    # Read every partition from the start without a consumer group: nothing to join, nothing to commit.
    reader = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await reader.start()
    reader.assign([TopicPartition(topic, partition) for partition in range(PARTITIONS)])
    found: list[tuple[dict, dict]] = []
    try:
        async with asyncio.timeout(60):
            while len(found) < count:
                for records in (await reader.getmany(timeout_ms=500)).values():
                    for record in records:
                        if record.key == key.encode():
                            headers = {name: value.decode() for name, value in record.headers}
                            found.append((headers, json.loads(record.value)))
    finally:
        await reader.stop()
    return found[:count]


async def test_a_product_from_the_broker_can_be_ordered_and_the_saga_can_reject_it(
    client, customer, consumers, relay, publish, kafka_bootstrap
):
    product_id = uuid.uuid4().hex[:24]
    product = {**SMARTPHONE, "_id": product_id, "name": "Foldable Phone", "price": 1299.5}
    await publish(PRODUCT_EVENTS, PRODUCT_CREATED, product_id, product)
    await wait_until(lambda: ProductPrice.exists(product_id=product_id))

    line = {"product_id": product_id, "quantity": 2, "price": 1299.5}
    response = await client.post(
        f"{ORDERS}/", json={"items": [line], "shipping_address": SHIPPING_ADDRESS}, headers=customer
    )
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["total_price"] == 2599.0

    [(headers, payload)] = await messages_for(kafka_bootstrap, ORDER_EVENTS, order["_id"], 1)
    assert (headers["event_type"], headers["aggregate_id"]) == (ORDER_PLACED, order["_id"])
    assert headers["correlation_id"] == response.headers["X-Request-ID"]
    assert payload == {"order_id": order["_id"], "user_id": "1", "items": [line], "total_price": 2599.0}

    reason = f"not enough stock for {product_id}"
    await publish(SAGA_EVENTS, SAGA_REJECTED, order["_id"], {"order_id": order["_id"], "reason": reason})

    async def rejected() -> bool:
        return (await get_order(client, customer, order["_id"]))["status"] == "rejected"

    await wait_until(rejected)
    events = await messages_for(kafka_bootstrap, ORDER_EVENTS, order["_id"], 2)
    assert [(headers["event_type"], payload["reason"]) for headers, payload in events[1:]] == [(ORDER_REJECTED, reason)]
