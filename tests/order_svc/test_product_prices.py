"""product-topic keeps the read model of prices: created and updated record the product's price, deleted marks
it; a redelivered event changes nothing (the inbox), an older event never overwrites a newer state, and a deleted
product stays deleted."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError
from tortoise import connections

from common.messages import PRODUCT_CREATED, PRODUCT_DELETED, PRODUCT_UPDATED
from order_svc.models import ProductPrice
from order_svc.orders import DB
from tests.order_svc.conftest import SMARTPHONE, deliver, price_of, received

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
PRODUCT_ID = "6650a1b2c3d4e5f60123abcd"


def product(price: float, name: str = "Tablet") -> dict:
    return {**SMARTPHONE, "_id": PRODUCT_ID, "name": name, "price": price}


async def test_the_seed_products_are_in_the_read_model(client):
    assert await price_of(SMARTPHONE["_id"]) == (Decimal("899.99"), False)
    recorded = await ProductPrice.get(product_id=SMARTPHONE["_id"])
    assert recorded.name == "Premium Smartphone"


async def test_created_updated_deleted(client):
    await deliver(received(PRODUCT_CREATED, product(100.0), PRODUCT_ID, occurred_at=T0))
    assert await price_of(PRODUCT_ID) == (Decimal("100.00"), False)
    await deliver(received(PRODUCT_UPDATED, product(89.9, name="Tablet S"), PRODUCT_ID, occurred_at=T0 + timedelta(1)))
    assert await price_of(PRODUCT_ID) == (Decimal("89.90"), False)
    assert (await ProductPrice.get(product_id=PRODUCT_ID)).name == "Tablet S"
    await deliver(received(PRODUCT_DELETED, product(89.9), PRODUCT_ID, occurred_at=T0 + timedelta(2)))
    assert await price_of(PRODUCT_ID) == (Decimal("89.90"), True)


async def test_a_redelivered_event_changes_nothing(client):
    created = received(PRODUCT_CREATED, product(100.0), PRODUCT_ID, occurred_at=T0)
    await deliver(created)
    # Suppose the catalog's clock stepped back: only the inbox can tell that this is the same event again.
    await deliver(received(PRODUCT_UPDATED, product(120.0), PRODUCT_ID, occurred_at=T0 - timedelta(hours=1)))
    await deliver(replace(created, occurred_at=(T0 + timedelta(hours=1)).isoformat()))
    assert await price_of(PRODUCT_ID) == (Decimal("100.00"), False)


async def test_an_older_event_does_not_overwrite_a_newer_state(client):
    await deliver(received(PRODUCT_UPDATED, product(120.0), PRODUCT_ID, occurred_at=T0 + timedelta(minutes=5)))
    await deliver(received(PRODUCT_CREATED, product(100.0), PRODUCT_ID, occurred_at=T0))  # replayed late
    assert await price_of(PRODUCT_ID) == (Decimal("120.00"), False)


async def test_a_deleted_product_stays_deleted(client):
    await deliver(received(PRODUCT_DELETED, product(100.0), PRODUCT_ID, occurred_at=T0))
    assert await price_of(PRODUCT_ID) == (Decimal("100.00"), True)  # a deletion seen first leaves a tombstone
    for event_type, moment in ((PRODUCT_CREATED, T0 - timedelta(1)), (PRODUCT_UPDATED, T0 + timedelta(1))):
        await deliver(received(event_type, product(50.0), PRODUCT_ID, occurred_at=moment))
    assert await price_of(PRODUCT_ID) == (Decimal("100.00"), True)


async def test_an_event_without_a_time_counts_from_its_receipt(client):
    await deliver(received(PRODUCT_CREATED, product(100.0), PRODUCT_ID, occurred_at=T0))
    await deliver(replace(received(PRODUCT_UPDATED, product(110.0), PRODUCT_ID), occurred_at=None))
    assert await price_of(PRODUCT_ID) == (Decimal("110.00"), False)


@pytest.mark.parametrize(
    "payload",
    [{"name": "No id", "price": 1.0}, {**SMARTPHONE, "price": "cheap"}, {**SMARTPHONE, "price": -1}, None],
)
async def test_a_malformed_product_is_refused_and_nothing_is_recorded(client, payload):
    event = received(PRODUCT_UPDATED, payload, PRODUCT_ID)
    with pytest.raises(ValidationError):
        await deliver(event)  # the consumer retries, then dead-letters it
    assert await price_of(SMARTPHONE["_id"]) == (Decimal("899.99"), False)
    assert await ProductPrice.all().count() == 3
    inbox = await connections.get(DB).execute_query_dict("SELECT 1 FROM inbox WHERE event_id = $1", [event.id])
    assert inbox == []  # rolled back with the failed effect, so a retry is not skipped
