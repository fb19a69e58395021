import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from catalog_svc.app import create_catalog_app
from catalog_svc.settings import CatalogSettings
from common.tokens import TokenIssuer
from tests.support import bearer, serving

SEED_PRODUCTS = [
    {
        "name": "Premium Smartphone",
        "description": "Latest model with high-end camera and long battery life",
        "category": "Electronics",
        "price": 899.99,
        "quantity": 50,
    },
    {
        "name": "Wireless Noise-Cancelling Headphones",
        "description": "Premium headphones with active noise cancellation",
        "category": "Audio",
        "price": 249.99,
        "quantity": 100,
    },
    {
        "name": "Smart Fitness Watch",
        "description": "Waterproof fitness tracker with heart rate monitoring",
        "category": "Wearables",
        "price": 179.99,
        "quantity": 75,
    },
]


@pytest.fixture(scope="session")
def catalog_settings(mongo_url: str, kafka_bootstrap: str) -> CatalogSettings:
    return CatalogSettings(
        _env_file=None,
        mongo_url=mongo_url,
        catalog_database=f"catalog_test_{uuid.uuid4().hex[:8]}",
        kafka_bootstrap_servers=kafka_bootstrap,
        log_json=False,
    )


@pytest.fixture(scope="session")
async def catalog_app_client(
    catalog_settings: CatalogSettings, issuer: TokenIssuer
) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_catalog_app(catalog_settings, token_verifier=issuer.verifier())) as client:
        yield client


@pytest.fixture(scope="session")
async def catalog_db(mongo_url: str, catalog_settings: CatalogSettings) -> AsyncIterator[AsyncDatabase]:
    """The catalog's database, for looking behind the API."""
    mongo = AsyncMongoClient(mongo_url, tz_aware=True)
    yield mongo[catalog_settings.catalog_database]
    await mongo.close()


@pytest.fixture
async def client(catalog_app_client: httpx.AsyncClient, catalog_db: AsyncDatabase) -> httpx.AsyncClient:
    """A client of catalog_svc over an empty catalog and an empty outbox."""
    for collection in ("products", "outbox", "outbox_dead_letter"):
        await catalog_db[collection].delete_many({})
    return catalog_app_client


@pytest.fixture
def admin(issuer: TokenIssuer) -> dict[str, str]:
    return bearer(issuer, 1, "admin")


@pytest.fixture
def customer(issuer: TokenIssuer) -> dict[str, str]:
    return bearer(issuer, 2, "user")


async def create_product(client: httpx.AsyncClient, admin: dict[str, str], **fields: object) -> dict:
    response = await client.post("/api/v1/products/", json={**SEED_PRODUCTS[0], **fields}, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


async def outbox_documents(catalog_db: AsyncDatabase) -> list[dict]:
    return [document async for document in catalog_db.outbox.find({}).sort("position", 1)]
