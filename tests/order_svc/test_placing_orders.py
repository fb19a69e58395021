"""POST /orders: the customer from the token, items at the catalog's prices, the total in Decimal; every refused
request (400/401/403/409/422) names what is wrong and writes nothing: no order, no item, no outbox row."""

import pytest

from common.messages import PRODUCT_DELETED, PRODUCT_UPDATED
from tests.order_svc.conftest import (
    CUSTOMER_ID,
    HEADPHONES,
    NOTHING_WRITTEN,
    ORDERS,
    SHIPPING_ADDRESS,
    SMARTPHONE,
    WATCH,
    deliver,
    item,
    order_body,
    received,
    table_counts,
)


def _without(mapping: dict, key: str) -> dict:
    return {k: v for k, v in mapping.items() if k != key}


async def test_the_user_id_may_be_a_number_or_left_out(client, customer):
    as_number = order_body(item(SMARTPHONE), user_id=CUSTOMER_ID)
    left_out = _without(order_body(item(SMARTPHONE)), "user_id")
    for body in (as_number, left_out):
        response = await client.post(f"{ORDERS}/", json=body, headers=customer)
        assert response.status_code == 201, response.text
        assert response.json()["user_id"] == "1"


async def test_line2_is_optional(client, customer):
    address = _without(SHIPPING_ADDRESS, "line2")
    response = await client.post(
        f"{ORDERS}/", json=order_body(item(SMARTPHONE), shipping_address=address), headers=customer
    )
    assert response.status_code == 201, response.text
    assert response.json()["shipping_address"] == {**SHIPPING_ADDRESS, "line2": None}


async def test_totals_are_exact(client, customer):
    # In binary floating point 0.1 + 0.2 != 0.3, and 3 x 179.99 prints as 539.9699999999999.
    cheap = {**SMARTPHONE, "_id": "cheap-1", "price": 0.1}
    cheaper = {**SMARTPHONE, "_id": "cheap-2", "price": 0.2}
    for product in (cheap, cheaper):
        await deliver(received("product.created", product, product["_id"]))
    response = await client.post(f"{ORDERS}/", json=order_body(item(cheap), item(cheaper)), headers=customer)
    assert response.json()["total_price"] == 0.3
    response = await client.post(f"{ORDERS}/", json=order_body(item(WATCH, 3)), headers=customer)
    assert '"total_price":539.97' in response.text


async def test_a_price_with_trailing_zeros_is_the_same_price(client, customer):
    await deliver(received(PRODUCT_UPDATED, {**HEADPHONES, "price": 250}, HEADPHONES["_id"]))
    response = await client.post(f"{ORDERS}/", json=order_body({**item(HEADPHONES), "price": 250.00}), headers=customer)
    assert response.status_code == 201, response.text
    assert response.json()["total_price"] == 250


async def test_no_token_is_401(client):
    response = await client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE)))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    bad = await client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE)), headers={"Authorization": "Bearer x"})
    assert bad.status_code == 401
    assert await table_counts() == NOTHING_WRITTEN


async def test_an_admin_cannot_place_orders(client, admin):
    response = await client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE), user_id="99"), headers=admin)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert await table_counts() == NOTHING_WRITTEN


@pytest.mark.parametrize("user_id", ["2", 2, "someone"])
async def test_an_order_for_another_user_is_403(client, customer, user_id):
    response = await client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE), user_id=user_id), headers=customer)
    assert response.status_code == 403
    assert response.json()["field"] == "user_id"
    assert await table_counts() == NOTHING_WRITTEN


SMARTPHONE_ITEM = item(SMARTPHONE)

INVALID_BODIES = [
    ({"items": [], "shipping_address": SHIPPING_ADDRESS}, "items"),
    ({"shipping_address": SHIPPING_ADDRESS}, "items"),
    ({"items": [SMARTPHONE_ITEM]}, "shipping_address"),
    (order_body({**SMARTPHONE_ITEM, "quantity": 0}), "items.0.quantity"),
    (order_body({**SMARTPHONE_ITEM, "quantity": -1}), "items.0.quantity"),
    (order_body({**SMARTPHONE_ITEM, "quantity": 1.5}), "items.0.quantity"),
    (order_body({**SMARTPHONE_ITEM, "quantity": "1"}), "items.0.quantity"),
    (order_body({**SMARTPHONE_ITEM, "quantity": True}), "items.0.quantity"),
    (order_body({**SMARTPHONE_ITEM, "quantity": 10_001}), "items.0.quantity"),
    (order_body(_without(SMARTPHONE_ITEM, "quantity")), "items.0.quantity"),
    (order_body({**SMARTPHONE_ITEM, "price": "899.99"}), "items.0.price"),
    (order_body({**SMARTPHONE_ITEM, "price": 899.999}), "items.0.price"),
    (order_body({**SMARTPHONE_ITEM, "price": 0}), "items.0.price"),
    (order_body({**SMARTPHONE_ITEM, "price": -1}), "items.0.price"),
    (order_body(_without(SMARTPHONE_ITEM, "price")), "items.0.price"),
    (order_body({**SMARTPHONE_ITEM, "product_id": ""}), "items.0.product_id"),
    (order_body(item(HEADPHONES), {**SMARTPHONE_ITEM, "color": "red"}), "items.1.color"),
    (order_body(SMARTPHONE_ITEM, item(HEADPHONES), SMARTPHONE_ITEM), "items"),  # a product listed twice
    (order_body(*[{**SMARTPHONE_ITEM, "product_id": f"p-{n}"} for n in range(101)]), "items"),
    (order_body(SMARTPHONE_ITEM, shipping_address=_without(SHIPPING_ADDRESS, "city")), "shipping_address.city"),
    (order_body(SMARTPHONE_ITEM, shipping_address={**SHIPPING_ADDRESS, "line1": " "}), "shipping_address.line1"),
    (order_body(SMARTPHONE_ITEM, shipping_address="123 Example Street"), "shipping_address"),
    (order_body(SMARTPHONE_ITEM, user_id=True), "user_id"),
    (order_body(SMARTPHONE_ITEM, status="paid"), "status"),
]


@pytest.mark.parametrize(("body", "field"), INVALID_BODIES)
async def test_an_invalid_body_is_422_naming_the_field(client, customer, body, field):
    response = await client.post(f"{ORDERS}/", json=body, headers=customer)
    assert response.status_code == 422, response.text
    assert field in {problem["field"] for problem in response.json()["fields"]}
    assert await table_counts() == NOTHING_WRITTEN


async def test_a_product_listed_twice_is_named(client, customer):
    response = await client.post(f"{ORDERS}/", json=order_body(SMARTPHONE_ITEM, SMARTPHONE_ITEM), headers=customer)
    [problem] = response.json()["fields"]
    assert SMARTPHONE["_id"] in problem["problem"]


async def test_a_total_beyond_what_an_order_holds_is_422(client, customer):
    costly = {**SMARTPHONE, "_id": "costly", "price": 1_000_000_000}
    await deliver(received("product.created", costly, "costly"))
    response = await client.post(f"{ORDERS}/", json=order_body(item(costly, 10)), headers=customer)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "items"
    assert await table_counts() == NOTHING_WRITTEN


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]"])
async def test_a_body_that_is_not_a_json_object_is_400(client, customer, body):
    response = await client.post(f"{ORDERS}/", content=body, headers=customer)
    assert response.status_code == 400
    assert await table_counts() == NOTHING_WRITTEN


async def test_an_unknown_product_is_409_naming_it(client, customer):
    unknown = {"product_id": "no-such-product", "quantity": 1, "price": 10.0}
    response = await client.post(f"{ORDERS}/", json=order_body(SMARTPHONE_ITEM, unknown), headers=customer)
    assert response.status_code == 409
    assert response.json()["product_id"] == "no-such-product"
    assert "no-such-product" in response.json()["message"]
    assert await table_counts() == NOTHING_WRITTEN


async def test_a_deleted_product_is_409_naming_it(client, customer):
    await deliver(received(PRODUCT_DELETED, WATCH, WATCH["_id"]))
    response = await client.post(f"{ORDERS}/", json=order_body(item(HEADPHONES), item(WATCH, 2)), headers=customer)
    assert response.status_code == 409
    assert response.json()["product_id"] == WATCH["_id"]
    assert "no longer sold" in response.json()["message"]
    assert await table_counts() == NOTHING_WRITTEN


async def test_a_price_other_than_the_catalogs_is_409_naming_both(client, customer):
    response = await client.post(f"{ORDERS}/", json=order_body({**SMARTPHONE_ITEM, "price": 799.99}), headers=customer)
    assert response.status_code == 409
    body = response.json()
    assert body["message"] == f"The price of product {SMARTPHONE['_id']} is 899.99, not 799.99"
    assert (body["product_id"], body["price"], body["catalog_price"]) == (SMARTPHONE["_id"], 799.99, 899.99)
    assert await table_counts() == NOTHING_WRITTEN


async def test_a_price_change_in_the_catalog_applies_to_the_next_order(client, customer):
    await deliver(received(PRODUCT_UPDATED, {**SMARTPHONE, "price": 849.99}, SMARTPHONE["_id"]))
    stale = await client.post(f"{ORDERS}/", json=order_body(SMARTPHONE_ITEM), headers=customer)
    assert stale.status_code == 409
    assert stale.json()["catalog_price"] == 849.99
    fresh = await client.post(f"{ORDERS}/", json=order_body({**SMARTPHONE_ITEM, "price": 849.99}), headers=customer)
    assert fresh.status_code == 201
    assert fresh.json()["total_price"] == 849.99
