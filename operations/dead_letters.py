"""Dead letters, outbox and inbox together: what the relay could not publish (outbox_relay/*_outbox.py) and what a
consumer could not apply (common/dead_letters.py), in one shape, and their re-drive. The inbox ones are read from
the PostgreSQL databases of the services that consume; each database is reached through its outbox store's pool."""

import asyncio
import json
from typing import Any, Literal

from aiokafka import AIOKafkaProducer

from common import dead_letters as inbox
from common.database import PgConnection
from common.errors import NotFound
from common.topics import started
from outbox_relay.outboxes import STORE_ERRORS, OutboxStore
from outbox_relay.postgres_outbox import PostgresOutboxStore

Source = Literal["outbox", "inbox"]


class DeadLetters:
    def __init__(self, stores: list[OutboxStore], bootstrap_servers: str) -> None:
        self._stores = {store.name: store for store in stores}
        self._bootstrap_servers = bootstrap_servers
        self._producer: AIOKafkaProducer | None = None
        self._with_inbox: set[str] = set()  # stores found to have an inbox (tables are never dropped)
        self._starting = asyncio.Lock()

    async def listed(self, limit: int, event_type: str | None) -> tuple[list[dict[str, Any]], list[str]]:
        """Up to `limit` dead letters of every store, oldest first; and the stores that could not be read."""
        stores = [*self._stores.values(), *self._postgres()]
        reads = [self._outbox_letters(store, limit, event_type) for store in self._stores.values()]
        reads += [self._inbox_letters(store, limit, event_type) for store in self._postgres()]
        letters: list[dict[str, Any]] = []
        unreachable: set[str] = set()
        for store, result in zip(stores, await asyncio.gather(*reads, return_exceptions=True), strict=True):
            if isinstance(result, STORE_ERRORS):
                unreachable.add(store.name)
            elif isinstance(result, BaseException):
                raise result
            else:
                letters += result
        return sorted(letters, key=lambda letter: letter["dead_at"])[:limit], sorted(unreachable)

    async def redrive(self, source: Source, store_name: str, event_id: str | None, event_type: str | None) -> int:
        """Send back one dead letter (`event_id`) or those of an event type; how many went."""
        store = self._stores.get(store_name)
        if store is None:
            raise NotFound(f"No store named {store_name}", store=store_name)
        if source == "outbox":
            await store.open()
            return await store.redrive(event_id, event_type)
        if not isinstance(store, PostgresOutboxStore):
            raise NotFound(f"{store_name} has no inbox", store=store_name)
        await store.open()
        async with store.pool.acquire() as connection:
            if not await self._has_inbox(store, connection):
                raise NotFound(f"{store_name} has no inbox", store=store_name)
            return len(await inbox.redrive_inbox(connection, await self._started_producer(), event_id, event_type))

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def _started_producer(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                self._producer = await started(lambda: inbox.redrive_producer(self._bootstrap_servers), timeout=10.0)
        return self._producer

    async def _has_inbox(self, store: PostgresOutboxStore, connection: PgConnection) -> bool:
        if store.name not in self._with_inbox and await inbox.has_inbox(connection):
            self._with_inbox.add(store.name)
        return store.name in self._with_inbox

    def _postgres(self) -> list[PostgresOutboxStore]:
        return [store for store in self._stores.values() if isinstance(store, PostgresOutboxStore)]

    async def _outbox_letters(self, store: OutboxStore, limit: int, event_type: str | None) -> list[dict[str, Any]]:
        await store.open()
        return [_from_outbox(letter) for letter in await store.dead_letters(limit, event_type)]

    async def _inbox_letters(
        self, store: PostgresOutboxStore, limit: int, event_type: str | None
    ) -> list[dict[str, Any]]:
        await store.open()
        async with store.pool.acquire() as connection:
            if not await self._has_inbox(store, connection):
                return []
            letters = await inbox.inbox_dead_letters(connection, limit, event_type)
        return [_from_inbox(store.name, letter) for letter in letters]


def _from_outbox(letter: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": "outbox",
        "store": letter["store"],
        "event_id": str(letter["id"]),
        "event_type": letter["event_type"],
        "aggregate_type": letter["aggregate_type"],
        "aggregate_id": letter["aggregate_id"],
        "topic": letter["topic"],
        "error": letter["last_error"],
        "attempts": letter["attempts"],
        "dead_at": letter["dead_at"],
        "consumer": None,
        "payload": letter["payload"],
        "headers": letter["headers"],
    }


def _from_inbox(store: str, letter: dict[str, Any]) -> dict[str, Any]:
    headers = letter["headers"]
    return {
        "source": "inbox",
        "store": store,
        "event_id": letter["event_id"],
        "event_type": headers.get("event_type"),
        "aggregate_type": headers.get("aggregate_type"),
        "aggregate_id": headers.get("aggregate_id"),
        "topic": letter["topic"],
        "error": letter["error"],
        "attempts": letter["attempts"],
        "dead_at": letter["dead_at"],
        "consumer": letter["consumer"],
        "payload": _decoded(letter["value"]),
        "headers": headers,
    }


def _decoded(value: str) -> Any:
    """The message's JSON, or its text when it is not JSON (an undecodable message is one reason for a letter)."""
    try:
        return json.loads(value)
    except ValueError:
        return value
