"""order_svc on the session's PostgreSQL (database "orders"): its HTTP API served on the test's loop, its event
handlers run as the consumer helper runs them, the read model seeded with the seed guide's prices, and helpers
to read what it wrote to its outbox."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from tortoise import connections

from common.consumer import EventConsumer, ReceivedEvent
from common.tokens import TokenIssuer
from order_svc.app import create_order_app
from order_svc.handlers import HANDLERS
from order_svc.models import ProductPrice
from order_svc.orders import DB
from order_svc.settings import OrderSettings
from tests.support import bearer, serving

ORDER_TABLES = "orders, order_items, product_prices, stock_levels, idempotency_keys"
MESSAGE_TABLES = "outbox, outbox_dead_letter, inbox, inbox_dead_letter"
ORDERS = "/api/v1/orders"

CUSTOMER_ID, OTHER_CUSTOMER_ID, ADMIN_ID = 1, 2, 99

# The seed guide's products (step 3) as the catalog returns them; ids as MongoDB makes them.
SMARTPHONE = {
    "name": "Premium Smartphone",
    "description": "Latest model with high-end camera and long battery life",
    "category": "Electronics",
    "price": 899.99,
    "quantity": 50,
    "_id": "6650a1b2c3d4e5f601234561",
}
HEADPHONES = {
    "name": "Wireless Noise-Cancelling Headphones",
    "description": "Premium headphones with active noise cancellation",
    "category": "Audio",
    "price": 249.99,
    "quantity": 100,
    "_id": "6650a1b2c3d4e5f601234562",
}
WATCH = {
    "name": "Smart Fitness Watch",
    "description": "Waterproof fitness tracker with heart rate monitoring",
    "category": "Wearables",
    "price": 179.99,
    "quantity": 75,
    "_id": "6650a1b2c3d4e5f601234563",
}

SHIPPING_ADDRESS = {
    "line1": "123 Example Street",
    "line2": "Apt 4B",
    "city": "Example City",
    "state": "EX",
    "postal_code": "12345",
    "country": "Example Country",
}


def item(product: dict, quantity: int = 1) -> dict:
    return {"product_id": product["_id"], "quantity": quantity, "price": product["price"]}


def order_body(*items: dict, **overrides: object) -> dict:
    """The seed's POST body (step 5.2) with these items."""
    return {"user_id": str(CUSTOMER_ID), "items": list(items), "shipping_address": SHIPPING_ADDRESS, **overrides}


@pytest.fixture(scope="session")
def order_settings(postgres_url: str, kafka_bootstrap: str) -> OrderSettings:
    # Consumers are started by the tests that need them: the session's topics carry other packages' events too.
    return OrderSettings(
        _env_file=None,
        ORDER_DATABASE_URL=f"{postgres_url}/orders",
        kafka_bootstrap_servers=kafka_bootstrap,
        consume_events=False,
        log_json=False,
    )


@pytest.fixture(scope="session")
async def order_app_client(order_settings: OrderSettings, issuer: TokenIssuer) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_order_app(order_settings, issuer.verifier())) as client:
        yield client


@pytest.fixture
async def client(order_app_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client of order_svc over empty tables, with the seed's three products in the price read model."""
    await connections.get(DB).execute_script(f"TRUNCATE {ORDER_TABLES}, {MESSAGE_TABLES} RESTART IDENTITY CASCADE")
    for product in (SMARTPHONE, HEADPHONES, WATCH):
        await deliver(received("product.created", product, product["_id"]))
    return order_app_client


@pytest.fixture(scope="session")
def customer(issuer: TokenIssuer) -> dict[str, str]:
    return bearer(issuer, CUSTOMER_ID, "user")


@pytest.fixture(scope="session")
def other_customer(issuer: TokenIssuer) -> dict[str, str]:
    return bearer(issuer, OTHER_CUSTOMER_ID, "user")


@pytest.fixture(scope="session")
def admin(issuer: TokenIssuer) -> dict[str, str]:
    return bearer(issuer, ADMIN_ID, "admin")


async def place(client: httpx.AsyncClient, headers: dict[str, str], *items: dict) -> dict:
    """A new order of `items` (one smartphone by default) for the holder of `headers`."""
    body = {"items": list(items or [item(SMARTPHONE)]), "shipping_address": SHIPPING_ADDRESS}
    response = await client.post(f"{ORDERS}/", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def get_order(client: httpx.AsyncClient, headers: dict[str, str], order_id: str) -> dict:
    response = await client.get(f"{ORDERS}/{order_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def set_status(client: httpx.AsyncClient, headers: dict[str, str], order_id: str, status: str) -> httpx.Response:
    return await client.put(f"{ORDERS}/{order_id}/status", json={"status": status}, headers=headers)


async def outbox_events(event_type: str | None = None) -> list[dict]:
    """What order_svc wrote to its outbox, oldest first."""
    rows = await connections.get(DB).execute_query_dict(
        "SELECT id, event_type, topic, aggregate_type, aggregate_id, payload::text AS payload,"
        " headers::text AS headers FROM outbox WHERE $1::text IS NULL OR event_type = $1 ORDER BY position",
        [event_type],
    )
    return [{**row, "payload": json.loads(row["payload"]), "headers": json.loads(row["headers"])} for row in rows]


NOTHING_WRITTEN = {"orders": 0, "order_items": 0, "outbox": 0}  # table_counts() of a refused request


async def table_counts() -> dict[str, int]:
    """Rows in the tables a request may write."""
    counts = {}
    for table in ("orders", "order_items", "outbox"):
        rows = await connections.get(DB).execute_query_dict(f"SELECT count(*) AS n FROM {table}")
        counts[table] = rows[0]["n"]
    return counts


def received(
    event_type: str,
    payload: dict,
    aggregate_id: str,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> ReceivedEvent:
    """An event as the consumer helper hands it to a handler."""
    return ReceivedEvent(
        id=event_id or uuid.uuid4(),
        type=event_type,
        aggregate_id=aggregate_id,
        payload=payload,
        correlation_id=None,
        occurred_at=(occurred_at or datetime.now(UTC)).isoformat(),
        topic={"product": "product-topic", "stock": "stock-updated"}.get(event_type.split(".")[0], "saga-events"),
        partition=0,
        offset=0,
    )


# The service's handlers behind the consumer helper, never started: tests hand it events.
CONSUMER = EventConsumer("order_svc.tests", "127.0.0.1:9", [], HANDLERS, DB)


async def deliver(event: ReceivedEvent) -> None:
    """Apply `event` as the service's consumer does (common/consumer.py): inbox record, lock and handler effect in
    one transaction."""
    await CONSUMER.apply([event])


async def price_of(product_id: str) -> tuple[Decimal, bool] | None:
    """The read model's (price, deleted) for a product, None if it never heard of it."""
    product = await ProductPrice.get_or_none(product_id=product_id)
    return None if product is None else (product.price, product.deleted)
