"""stock_svc on the session's PostgreSQL (database "stock"): its HTTP API served on the test's loop, its event
handlers run as the consumer helper runs them, and helpers to read what it wrote to its outbox."""

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tortoise import connections

from common.consumer import EventConsumer, ReceivedEvent
from common.tokens import TokenIssuer
from common.topics import PRODUCT_EVENTS, STOCK_COMMANDS
from stock_svc.app import create_stock_app
from stock_svc.handlers import HANDLERS, lock_key
from stock_svc.inventory import DB
from stock_svc.reservations import lock_items_of_commands
from stock_svc.settings import StockSettings
from tests.support import bearer, serving

STOCK_TABLES = "inventory_items, stock_history, reservations, handled_commands, idempotency_keys"
MESSAGE_TABLES = "outbox, outbox_dead_letter, inbox, inbox_dead_letter"


@pytest.fixture(scope="session")
def stock_settings(postgres_url: str, kafka_bootstrap: str) -> StockSettings:
    # Consumers are started by the tests that need them: the session's topics carry other packages' events too.
    return StockSettings(
        _env_file=None,
        STOCK_DATABASE_URL=f"{postgres_url}/stock",
        kafka_bootstrap_servers=kafka_bootstrap,
        consume_events=False,
        log_json=False,
    )


@pytest.fixture(scope="session")
async def stock_app_client(stock_settings: StockSettings, issuer: TokenIssuer) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_stock_app(stock_settings, issuer.verifier())) as client:
        yield client


@pytest.fixture
async def client(stock_app_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client of stock_svc over empty tables."""
    await connections.get(DB).execute_script(f"TRUNCATE {STOCK_TABLES}, {MESSAGE_TABLES} RESTART IDENTITY CASCADE")
    return stock_app_client


@pytest.fixture(scope="session")
def admin(issuer: TokenIssuer) -> dict[str, str]:
    return bearer(issuer, 1, "admin")


@pytest.fixture(scope="session")
def user(issuer: TokenIssuer) -> dict[str, str]:
    return bearer(issuer, 2, "user")


async def create_item(
    client: httpx.AsyncClient, admin: dict[str, str], product_id: str, available: int, **fields: Any
) -> dict:
    body = {"product_id": product_id, "available_quantity": available, **fields}
    response = await client.post("/api/v1/inventory/", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


async def get_item(client: httpx.AsyncClient, headers: dict[str, str], product_id: str) -> dict:
    response = await client.get(f"/api/v1/inventory/{product_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def quantities(item: dict) -> tuple[int, int]:
    return item["available_quantity"], item["reserved_quantity"]


async def outbox_events(event_type: str | None = None) -> list[dict]:
    """What stock_svc wrote to its outbox, oldest first."""
    rows = await connections.get(DB).execute_query_dict(
        "SELECT event_type, topic, aggregate_type, aggregate_id, payload::text AS payload, headers::text AS headers"
        " FROM outbox WHERE $1::text IS NULL OR event_type = $1 ORDER BY position",
        [event_type],
    )
    return [{**row, "payload": json.loads(row["payload"]), "headers": json.loads(row["headers"])} for row in rows]


async def stock_payloads(event_type: str, product_id: str) -> list[int]:
    """The `stock` figures of the item's stock events of one type, oldest first."""
    return [e["payload"]["stock"] for e in await outbox_events(event_type) if e["aggregate_id"] == product_id]


def received(event_type: str, payload: dict, aggregate_id: str, event_id: uuid.UUID | None = None) -> ReceivedEvent:
    """An event as the consumer helper hands it to a handler."""
    return ReceivedEvent(
        id=event_id or uuid.uuid4(),
        type=event_type,
        aggregate_id=aggregate_id,
        payload=payload,
        correlation_id=None,
        occurred_at=None,
        topic=PRODUCT_EVENTS if event_type.startswith("product.") else STOCK_COMMANDS,
        partition=0,
        offset=0,
    )


# The service's handlers behind the consumer helper, never started: tests hand it events.
CONSUMER = EventConsumer(
    "stock_svc.tests", "127.0.0.1:9", [], HANDLERS, DB, lock_key=lock_key, lock_rows=lock_items_of_commands
)


async def deliver(event: ReceivedEvent) -> None:
    """Apply `event` as the service's consumer does (common/consumer.py): inbox record, lock and handler effect in
    one transaction."""
    await CONSUMER.apply([event])


def product(product_id: str, quantity: int, name: str = "Premium Smartphone") -> dict:
    """A product as catalog_svc's API returns it (and as product-topic carries it)."""
    return {
        "name": name,
        "description": "Latest model with high-end camera and long battery life",
        "category": "Electronics",
        "price": 899.99,
        "quantity": quantity,
        "_id": product_id,
    }
