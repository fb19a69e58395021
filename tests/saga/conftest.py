import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from common.consumer import ReceivedEvent
from common.tokens import TokenIssuer
from saga.app import create_saga_app
from saga.models import Saga
from saga.orchestrator import Orchestrator, Timing
from saga.settings import SagaSettings
from tests.support import serving

ITEMS = [{"product_id": "p-1", "quantity": 1, "price": 899.99}, {"product_id": "p-2", "quantity": 2, "price": 10.0}]


@pytest.fixture(scope="session")
async def saga_client(postgres_url: str, kafka_bootstrap: str, issuer: TokenIssuer) -> AsyncIterator[httpx.AsyncClient]:
    """The saga app without its consumers and timer: tests drive the orchestrator themselves."""
    settings = SagaSettings(
        _env_file=None,
        SAGA_DATABASE_URL=f"{postgres_url}/sagas",
        kafka_bootstrap_servers=kafka_bootstrap,
        consume_events=False,
    )
    async with serving(create_saga_app(settings, token_verifier=issuer.verifier())) as client:
        yield client


@pytest.fixture
async def client(saga_client: httpx.AsyncClient) -> httpx.AsyncClient:
    await connections.get("saga").execute_script("TRUNCATE sagas, saga_steps, outbox, inbox RESTART IDENTITY CASCADE")
    return saga_client


def orchestrator(
    payment_timeout: float = 900, step_timeout: float = 10, step_max_attempts: int = 3, failed_retry_delay: float = 300
) -> Orchestrator:
    return Orchestrator(Timing(payment_timeout, step_timeout, step_max_attempts, failed_retry_delay))


def cause(event_type: str = "test.message", topic: str = "test-topic") -> ReceivedEvent:
    """A message for a move to answer, as the consumer hands it over."""
    return ReceivedEvent(uuid.uuid4(), event_type, "", {}, None, None, topic, 0, 0)


def order_placed(saga: Orchestrator) -> Callable[..., Awaitable[None]]:
    """The orchestrator's move for one order.placed (the consumer hands it runs of them)."""

    async def move(connection: BaseDBAsyncClient, payload: dict[str, Any], cause: ReceivedEvent) -> None:
        await saga.orders_placed(connection, [(payload, cause)])

    return move


def stock_reserved(saga: Orchestrator) -> Callable[..., Awaitable[None]]:
    """The orchestrator's move for one stock.reserved reply (the consumer hands it runs of them)."""

    async def move(connection: BaseDBAsyncClient, order_id: str, cause: ReceivedEvent) -> None:
        await saga.stocks_reserved(connection, [(order_id, cause)])

    return move


async def run(method, *arguments: Any) -> None:
    """One orchestrator call in its own transaction, as a consumer runs it."""
    async with in_transaction("saga") as connection:
        await method(connection, *arguments, cause())


async def place(saga_orchestrator: Orchestrator, user_id: int = 7) -> str:
    order_id = str(uuid.uuid4())
    payload = {"order_id": order_id, "user_id": str(user_id), "items": ITEMS, "total_price": 919.99}
    await run(order_placed(saga_orchestrator), payload)
    return order_id


async def saga_of(order_id: str) -> Saga:
    return await Saga.get(order_id=order_id)


async def commands(order_id: str) -> list[tuple[str, dict]]:
    rows = await connections.get("saga").execute_query_dict(
        "SELECT event_type, payload::text AS payload FROM outbox WHERE aggregate_id = $1 ORDER BY position",
        [order_id],
    )
    return [(row["event_type"], json.loads(row["payload"])) for row in rows]


async def relay_publishes() -> None:
    """What the relay does: every command in the saga's outbox marked published (the timer resends, and counts,
    only commands that left the outbox)."""
    await connections.get("saga").execute_query("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
