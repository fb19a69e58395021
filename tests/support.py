"""Helpers shared by the tests: serving an app on the test's loop, producing and reading events as the system
does, running the real relay in-process, waiting for what happens asynchronously."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sanic import Sanic

from common.tokens import TokenIssuer
from common.topics import PARTITIONS
from outbox_relay.postgres_outbox import PostgresOutbox
from outbox_relay.publisher import Publisher
from outbox_relay.relay import Relay
from outbox_relay.settings import RelaySettings
from stack.infra import free_port

Sanic.test_mode = True  # several apps in one process


def bearer(issuer: TokenIssuer, user_id: int, role: str) -> dict[str, str]:
    """The Authorization header of an access token `issuer` signs for the user and role."""
    return {"Authorization": f"Bearer {issuer.access_token(user_id, role)}"}


@asynccontextmanager
async def serving(app: Sanic) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app` with its listeners on a free port; yield a client whose base URL is the app."""
    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True)
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        await server.before_stop()
        await server.close()
        await server.after_stop()


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout: float = 60.0, interval: float = 0.02) -> float:
    """Seconds until the async `condition` held; TimeoutError after `timeout` s."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
    return time.monotonic() - started


@asynccontextmanager
async def envelope_producer(kafka_bootstrap: str) -> AsyncIterator[Callable[[str, str, str, dict], Awaitable[None]]]:
    """`send(topic, event_type, key, payload)` produces an event as the relay would: JSON value, key = the
    aggregate id, the envelope (DESIGN §4) in headers, a fresh event id each time."""
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

    try:
        yield send
    finally:
        await producer.stop()


async def messages_for(kafka_bootstrap: str, topic: str, key: str, count: int) -> list[tuple[dict, dict]]:
    """The first `count` (headers, payload) published on `topic` under `key` (the topic holds others too)."""
    # Every partition from the start, without a consumer group: nothing to join, nothing to commit.
    reader = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await reader.start()
    reader.assign([TopicPartition(topic, partition) for partition in range(PARTITIONS)])
    found: list[tuple[dict, dict]] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < count:
                for records in (await reader.getmany(timeout_ms=500)).values():
                    for record in records:
                        if record.key == key.encode():
                            headers = {name: value.decode() for name, value in record.headers}
                            found.append((headers, json.loads(record.value)))
    finally:
        await reader.stop()
    return found[:count]


@asynccontextmanager
async def running_relay(
    database_urls: list[str],
    kafka_bootstrap: str,
    make_producer: Callable[..., AIOKafkaProducer] = AIOKafkaProducer,
    **settings: object,
) -> AsyncIterator[Relay]:
    """The real relay draining these databases' outboxes, in this process, until the block ends (its Kafka producer
    made by `make_producer`: a test may wrap it in a fault)."""
    relay_settings = RelaySettings(
        _env_file=None,
        outbox_database_urls=",".join(database_urls),
        kafka_bootstrap_servers=kafka_bootstrap,
        **settings,
    )
    publisher = Publisher(kafka_bootstrap, make_producer=make_producer)
    relay = Relay([PostgresOutbox(url) for url in database_urls], publisher, relay_settings)
    await relay.publisher.start()
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await relay.publisher.stop()
        for outbox in relay.outboxes:
            await outbox.close()


async def assert_refuses_bodies_over_the_limit(client: httpx.AsyncClient, path: str, limit: int = 1024 * 1024) -> None:
    """A POST of `limit` + 1 bytes to `path` is a JSON 413 (MAX_BODY_BYTES), before authentication or validation;
    the metrics endpoint still answers (the refusal left the service serving)."""
    response = await client.post(path, content=b"x" * (limit + 1), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert (await client.get("/metrics")).status_code == 200
