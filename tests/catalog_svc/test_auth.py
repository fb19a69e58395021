"""Writes need an admin token (none: 401, another role: 403); reading needs no token."""

from datetime import timedelta

import pytest

from common.tokens import TokenIssuer, generate_private_key_pem
from tests.catalog_svc.conftest import SEED_PRODUCTS, create_product, outbox_documents

WRITES = [
    ("post", "/api/v1/products/", SEED_PRODUCTS[0]),
    ("put", "/api/v1/products/{id}", {"price": 1.5}),
    ("delete", "/api/v1/products/{id}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_writes_without_a_token_are_401(client, admin, catalog_db, method, path, body):
    product = await create_product(client, admin)
    before = await outbox_documents(catalog_db)
    response = await client.request(method, path.format(id=product["_id"]), json=body)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await outbox_documents(catalog_db) == before


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_writes_with_a_user_token_are_403(client, admin, customer, catalog_db, method, path, body):
    product = await create_product(client, admin)
    before = await outbox_documents(catalog_db)
    response = await client.request(method, path.format(id=product["_id"]), json=body, headers=customer)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert await outbox_documents(catalog_db) == before
    assert (await client.get(f"/api/v1/products/{product['_id']}")).json() == product


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Basic YWRtaW46YWRtaW4=", "Bearer"])
async def test_a_bad_token_is_401(client, header):
    response = await client.post("/api/v1/products/", json=SEED_PRODUCTS[0], headers={"Authorization": header})
    assert response.status_code == 401


async def test_a_token_signed_by_another_key_is_401(client):
    stranger = TokenIssuer(generate_private_key_pem(), timedelta(minutes=5), timedelta(days=1))
    headers = {"Authorization": f"Bearer {stranger.access_token(1, 'admin')}"}
    assert (await client.post("/api/v1/products/", json=SEED_PRODUCTS[0], headers=headers)).status_code == 401


async def test_reading_needs_no_token(client, admin):
    product = await create_product(client, admin)
    assert (await client.get("/api/v1/products/")).status_code == 200
    assert (await client.get(f"/api/v1/products/{product['_id']}")).status_code == 200
    assert (await client.get("/api/v1/products/categories")).status_code == 200
