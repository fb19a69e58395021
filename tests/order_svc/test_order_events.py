"""Each change of an order writes its event to the outbox in the same transaction (topic order-events, key the
order id, payloads as common/messages.py fixes them); when the event cannot be written, the change is undone."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tortoise import connections

from common.messages import ORDER_CANCELLED, ORDER_PAID, ORDER_PLACED
from common.topics import ORDER_EVENTS
from order_svc.orders import DB
from tests.order_svc.conftest import (
    HEADPHONES,
    ORDERS,
    SHIPPING_ADDRESS,
    WATCH,
    get_order,
    item,
    outbox_events,
    place,
    set_status,
    table_counts,
)


async def test_placing_an_order_writes_order_placed(client, customer):
    body = {"items": [item(HEADPHONES), item(WATCH, 2)], "shipping_address": SHIPPING_ADDRESS}
    response = await client.post(f"{ORDERS}/", json=body, headers=customer)
    order = response.json()
    [event] = await outbox_events()
    assert (event["event_type"], event["topic"], event["aggregate_type"], event["aggregate_id"]) == (
        ORDER_PLACED,
        ORDER_EVENTS,
        "order",
        order["_id"],
    )
    assert event["payload"] == {
        "order_id": order["_id"],
        "user_id": "1",
        "items": [
            {"product_id": HEADPHONES["_id"], "quantity": 1, "price": 249.99},
            {"product_id": WATCH["_id"], "quantity": 2, "price": 179.99},
        ],
        "total_price": 609.97,
    }
    # The request's id correlates everything the order sets off.
    assert event["headers"]["correlation_id"] == response.headers["X-Request-ID"]


async def test_paying_and_cancelling_write_their_events(client, customer):
    paid = (await place(client, customer))["_id"]
    cancelled = (await place(client, customer))["_id"]
    await set_status(client, customer, paid, "paid")
    await client.delete(f"{ORDERS}/{cancelled}", headers=customer)
    changes = [
        (event["event_type"], event["aggregate_id"], event["payload"])
        for event in await outbox_events()
        if event["event_type"] != ORDER_PLACED
    ]
    assert changes == [
        (ORDER_PAID, paid, {"order_id": paid, "user_id": "1", "status": "paid", "reason": None}),
        (ORDER_CANCELLED, cancelled, {"order_id": cancelled, "user_id": "1", "status": "cancelled", "reason": None}),
    ]


async def test_shipping_and_delivery_concern_no_other_service(client, customer, admin):
    order_id = (await place(client, customer))["_id"]
    for status in ("paid", "shipped", "delivered"):
        await set_status(client, admin, order_id, status)
    assert [event["event_type"] for event in await outbox_events()] == [ORDER_PLACED, ORDER_PAID]


@asynccontextmanager
async def outbox_refusing_order_events() -> AsyncIterator[None]:
    """An outbox that refuses order events, as a failing write would: the database, not a mock, says no."""
    database = connections.get(DB)
    await database.execute_script(
        "ALTER TABLE outbox ADD CONSTRAINT refuse_order_events CHECK (event_type NOT LIKE 'order.%') NOT VALID"
    )
    try:
        yield
    finally:
        await database.execute_script("ALTER TABLE outbox DROP CONSTRAINT refuse_order_events")


async def test_an_order_whose_event_cannot_be_written_is_not_placed(client, customer):
    async with outbox_refusing_order_events():
        body = {"items": [item(HEADPHONES)], "shipping_address": SHIPPING_ADDRESS}
        response = await client.post(f"{ORDERS}/", json=body, headers=customer)
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert await table_counts() == {"orders": 0, "order_items": 0, "outbox": 0}


async def test_a_status_change_whose_event_cannot_be_written_is_not_made(client, customer):
    order_id = (await place(client, customer))["_id"]
    async with outbox_refusing_order_events():
        assert (await set_status(client, customer, order_id, "paid")).status_code == 500
        assert (await client.delete(f"{ORDERS}/{order_id}", headers=customer)).status_code == 500
    assert (await get_order(client, customer, order_id))["status"] == "pending"
    assert [event["event_type"] for event in await outbox_events()] == [ORDER_PLACED]
