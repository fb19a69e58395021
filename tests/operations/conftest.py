"""The operations service on the session's PostgreSQL, MongoDB-wire server and Kafka: two service databases of its
own (one that consumes, with an inbox, and one that only publishes), a MongoDB outbox, and a database named in its
settings that was never created (a service not started yet)."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from common.database import asyncpg_dsn, ensure_database
from common.inbox import INBOX_DDL, INBOX_DEAD_LETTER_BY_EVENT
from common.mongo_outbox import ensure_outbox_indexes
from common.outbox import OUTBOX_DDL
from common.tokens import TokenIssuer
from operations.app import create_operations_app
from operations.settings import OperationsSettings
from tests.support import bearer, serving

OPERATIONS = "/api/v1/operations"
CONSUMING, PUBLISHING, MISSING = "ops_consuming", "ops_publishing", "ops_missing"
MONGO_DATABASE = "ops_catalog"
ADMIN_ID, CUSTOMER_ID = 7, 8


@pytest.fixture(scope="session")
async def database_urls(postgres_url: str) -> dict[str, str]:
    urls = {name: f"{postgres_url}/{name}" for name in (CONSUMING, PUBLISHING, MISSING)}
    for name, ddl in ((CONSUMING, OUTBOX_DDL + INBOX_DDL + INBOX_DEAD_LETTER_BY_EVENT), (PUBLISHING, OUTBOX_DDL)):
        await ensure_database(urls[name])
        connection = await asyncpg.connect(asyncpg_dsn(urls[name]))
        await connection.execute(ddl)
        await connection.close()
    return urls


@pytest.fixture(scope="session")
def operations_mongo_url(mongo_url: str) -> str:
    return mongo_url.replace("/?", f"/{MONGO_DATABASE}?")


@pytest.fixture(scope="session")
async def operations_client(
    database_urls: dict[str, str], operations_mongo_url: str, kafka_bootstrap: str, issuer: TokenIssuer
) -> AsyncIterator[httpx.AsyncClient]:
    settings = OperationsSettings(
        _env_file=None,
        outbox_database_urls=",".join(database_urls.values()),
        outbox_mongo_url=operations_mongo_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_lag_max_age=0.05,
        log_json=False,
    )
    async with serving(create_operations_app(settings, issuer.verifier())) as client:
        yield client


@asynccontextmanager
async def emptied(url: str, tables: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a service database whose `tables` were emptied first."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    await connection.execute(f"TRUNCATE {tables}")
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def consuming(database_urls: dict[str, str]) -> AsyncIterator[asyncpg.Connection]:
    async with emptied(database_urls[CONSUMING], "outbox, outbox_dead_letter, inbox, inbox_dead_letter") as connection:
        yield connection


@pytest.fixture
async def publishing(database_urls: dict[str, str]) -> AsyncIterator[asyncpg.Connection]:
    async with emptied(database_urls[PUBLISHING], "outbox, outbox_dead_letter") as connection:
        yield connection


@pytest.fixture
async def catalog(operations_mongo_url: str) -> AsyncIterator[AsyncDatabase]:
    client = AsyncMongoClient(operations_mongo_url, tz_aware=True)
    database = client.get_default_database()
    for collection in ("outbox", "outbox_dead_letter"):
        await database[collection].delete_many({})
    await ensure_outbox_indexes(database)
    yield database
    await client.close()


@pytest.fixture
async def client(operations_client: httpx.AsyncClient, consuming, publishing, catalog) -> httpx.AsyncClient:
    """The operations API over empty outboxes, inboxes and dead letters."""
    return operations_client


@pytest.fixture(scope="session")
def admin(issuer: TokenIssuer) -> dict[str, str]:
    return bearer(issuer, ADMIN_ID, "admin")


@pytest.fixture(scope="session")
def customer(issuer: TokenIssuer) -> dict[str, str]:
    return bearer(issuer, CUSTOMER_ID, "user")


def new_id() -> str:
    return str(uuid.uuid4())
