"""Bad input gets 400 (not JSON) or 422 naming the field, and writes nothing."""

import pytest

from tests.catalog_svc.conftest import SEED_PRODUCTS, create_product, outbox_documents


def problems(response) -> list[str]:
    body = response.json()
    assert body["error"] == "validation_failed", body
    return [problem["field"] for problem in body["fields"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": 42}, "name"),
        ({"category": ""}, "category"),
        ({"price": 0}, "price"),
        ({"price": -5}, "price"),
        ({"price": 10.999}, "price"),
        ({"price": 0.001}, "price"),
        ({"price": "899.99"}, "price"),
        ({"price": True}, "price"),
        ({"price": None}, "price"),
        ({"price": 1e12}, "price"),
        ({"quantity": -1}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"quantity": 50.0}, "quantity"),
        ({"quantity": "50"}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"stock": 3}, "stock"),
        ({"_id": "64b000000000000000000000"}, "_id"),
    ],
)
async def test_invalid_field_on_create_is_422_naming_it(client, admin, catalog_db, change, field):
    response = await client.post("/api/v1/products/", json={**SEED_PRODUCTS[0], **change}, headers=admin)
    assert response.status_code == 422, response.text
    assert problems(response) == [field]
    assert await catalog_db.products.count_documents({}) == 0
    assert await outbox_documents(catalog_db) == []


@pytest.mark.parametrize("field", ["name", "category", "price", "quantity"])
async def test_missing_required_field_is_422_naming_it(client, admin, field):
    body = {key: value for key, value in SEED_PRODUCTS[0].items() if key != field}
    response = await client.post("/api/v1/products/", json=body, headers=admin)
    assert response.status_code == 422
    assert problems(response) == [field]


async def test_description_is_optional(client, admin):
    body = {key: value for key, value in SEED_PRODUCTS[0].items() if key != "description"}
    response = await client.post("/api/v1/products/", json=body, headers=admin)
    assert response.status_code == 201
    assert response.json()["description"] == ""


@pytest.mark.parametrize("content", [b"", b"not json", b"[1, 2]", b'"a string"', b'{"name": '])
async def test_a_body_that_is_not_a_json_object_is_400(client, admin, content):
    headers = {**admin, "Content-Type": "application/json"}
    response = await client.post("/api/v1/products/", content=content, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price": 0}, "price"),
        ({"price": 1.234}, "price"),
        ({"quantity": -3}, "quantity"),
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_invalid_field_on_update_is_422_and_changes_nothing(client, admin, catalog_db, change, field):
    product = await create_product(client, admin)
    before = await outbox_documents(catalog_db)
    response = await client.put(f"/api/v1/products/{product['_id']}", json=change, headers=admin)
    assert response.status_code == 422
    assert problems(response) == [field]
    assert (await client.get(f"/api/v1/products/{product['_id']}")).json() == product
    assert await outbox_documents(catalog_db) == before


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"min_price": 300, "max_price": 100}, "max_price"),
        ({"min_price": "cheap"}, "min_price"),
        ({"max_price": -1}, "max_price"),
        ({"min_price": "NaN"}, "min_price"),
        ({"max_price": "Infinity"}, "max_price"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"skip": -1}, "skip"),
        ({"skip": "99999999999999999999999"}, "skip"),
        ({"category": "x" * 101}, "category"),
        ({"sort": "price"}, "sort"),
    ],
)
async def test_invalid_list_filter_is_422_naming_it(client, params, field):
    response = await client.get("/api/v1/products/", params=params)
    assert response.status_code == 422, response.text
    assert problems(response) == [field]
