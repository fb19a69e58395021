"""Adjustments add or remove available units; the result never goes negative."""

from tests.stock_svc.conftest import create_item, get_item, quantities


async def adjust(client, admin, change: int, reference_id: str | None = None):
    body = {"product_id": "product-1", "quantity_change": change}
    if reference_id is not None:
        body["reference_id"] = reference_id
    return await client.post("/api/v1/inventory/adjust", json=body, headers=admin)


async def test_adjust_adds_and_removes_available_units(client, admin):
    await create_item(client, admin, "product-1", 10)
    assert quantities((await adjust(client, admin, 15, "delivery-7")).json()) == (25, 0)
    assert quantities((await adjust(client, admin, -25, "stocktake")).json()) == (0, 0)


async def test_an_adjustment_below_zero_is_a_conflict_with_the_numbers(client, admin, user):
    await create_item(client, admin, "product-1", 10)
    await client.post(
        "/api/v1/inventory/reserve", json={"product_id": "product-1", "quantity": 4, "order_id": "o-1"}, headers=admin
    )
    response = await adjust(client, admin, -7)
    assert response.status_code == 409
    body = response.json()
    assert (body["product_id"], body["requested"], body["available"]) == ("product-1", -7, 6)
    assert quantities(await get_item(client, user, "product-1")) == (6, 4)


async def test_stock_cannot_outgrow_the_database_columns(client, admin):
    await create_item(client, admin, "product-1", 1_000_000_000)
    assert (await adjust(client, admin, 1_000_000_000)).status_code == 200
    response = await adjust(client, admin, 1_000_000_000)
    assert response.status_code == 409
    assert response.json()["product_id"] == "product-1"


async def test_a_restock_sent_again_with_its_idempotency_key_applies_once(client, admin):
    await create_item(client, admin, "product-1", 10)
    keyed = {**admin, "Idempotency-Key": "delivery-7-restock"}
    body = {"product_id": "product-1", "quantity_change": 15}
    first = await client.post("/api/v1/inventory/adjust", json=body, headers=keyed)
    again = await client.post("/api/v1/inventory/adjust", json=body, headers=keyed)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert quantities(await get_item(client, admin, "product-1")) == (25, 0)
    other = await client.post("/api/v1/inventory/adjust", json={**body, "quantity_change": 5}, headers=keyed)
    assert other.status_code == 409 and other.json()["field"] == "Idempotency-Key"


async def test_a_refused_stock_write_keeps_its_refusal_under_its_key(client, admin):
    """The refusal is the key's answer: sent again, the same write is refused again, even once it would pass (a
    first send still on its way must not take the units after the client was told no); a corrected write needs a
    new key."""
    await create_item(client, admin, "product-1", 10)
    hold = {"product_id": "product-1", "quantity": 12, "order_id": "o-1"}
    keyed = {**admin, "Idempotency-Key": "hold-o-1"}
    refused = await client.post("/api/v1/inventory/reserve", json=hold, headers=keyed)
    assert refused.status_code == 409
    assert (await adjust(client, admin, 5)).status_code == 200  # now 15 units: the same hold would pass
    again = await client.post("/api/v1/inventory/reserve", json=hold, headers=keyed)
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (409, "true"), again.text
    assert again.json()["message"] == refused.json()["message"]
    assert quantities(await get_item(client, admin, "product-1")) == (15, 0)
    corrected = await client.post(
        "/api/v1/inventory/reserve", json=hold, headers={**admin, "Idempotency-Key": "hold-o-1-again"}
    )
    assert corrected.status_code == 200 and quantities(corrected.json()) == (3, 12)


async def test_an_unknown_product_is_the_keys_answer_too(client, admin):
    keyed = {**admin, "Idempotency-Key": "restock-p-9"}
    body = {"product_id": "product-9", "quantity_change": 5}
    assert (await client.post("/api/v1/inventory/adjust", json=body, headers=keyed)).status_code == 404
    await create_item(client, admin, "product-9", 1)
    again = await client.post("/api/v1/inventory/adjust", json=body, headers=keyed)
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (404, "true"), again.text
    assert quantities(await get_item(client, admin, "product-9")) == (1, 0)
