"""Through the broker: events produced with the envelope headers (as the relay publishes them) reach stock's
consumers, and stock's own events, the saga replies included, leave through the real relay draining its outbox."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from common.consumer import EventConsumer
from common.messages import PRODUCT_CREATED, PRODUCT_DELETED, PRODUCT_UPDATED, RESERVE_STOCK, STOCK_RESERVED
from common.topics import PRODUCT_EVENTS, STOCK_COMMANDS, STOCK_REPLIES, STOCK_UPDATES, ensure_topics
from outbox_relay.relay import Relay
from stock_svc.handlers import stock_consumers
from stock_svc.models import InventoryItem, StockHistory
from tests.stock_svc.conftest import create_item, get_item, product, quantities
from tests.support import messages_for, running_relay, wait_until


@pytest.fixture(scope="module")
async def consumers(stock_app_client, stock_settings, kafka_bootstrap) -> AsyncIterator[list[EventConsumer]]:
    """stock's consumers, for this module's tests only (joining a group takes the broker seconds)."""
    await ensure_topics(kafka_bootstrap, (PRODUCT_EVENTS, STOCK_COMMANDS, STOCK_REPLIES, STOCK_UPDATES))
    running = stock_consumers(stock_settings)
    await asyncio.gather(*(consumer.start() for consumer in running))
    yield running
    await asyncio.gather(*(consumer.stop() for consumer in running))


@pytest.fixture
async def relay(client, stock_settings, kafka_bootstrap) -> AsyncIterator[Relay]:
    """The relay draining stock_svc's outbox."""
    async with running_relay([stock_settings.database_url], kafka_bootstrap) as running:
        yield running


async def test_product_events_from_the_broker_manage_the_inventory(client, user, consumers, publish):
    product_id = f"product-{uuid.uuid4().hex[:8]}"
    await publish(PRODUCT_EVENTS, PRODUCT_CREATED, product_id, product(product_id, 50))
    await publish(PRODUCT_EVENTS, PRODUCT_CREATED, product_id, product(product_id, 80))  # a repeat, another id
    await publish(PRODUCT_EVENTS, PRODUCT_UPDATED, product_id, product(product_id, 7, name="Renamed"))

    async def inventory_exists() -> bool:
        return await InventoryItem.exists(product_id=product_id)

    await wait_until(inventory_exists)
    item = await get_item(client, user, product_id)
    assert (item["available_quantity"], item["reserved_quantity"], item["reorder_threshold"]) == (50, 0, 5)

    # One product's events share a partition: once the deletion is seen, the events before it were handled.
    await publish(PRODUCT_EVENTS, PRODUCT_DELETED, product_id, product(product_id, 7, name="Renamed"))

    async def retired() -> bool:
        return await InventoryItem.exists(product_id=product_id, retired_at__isnull=False)

    await wait_until(retired)
    assert await InventoryItem.filter(product_id=product_id).count() == 1
    assert (await InventoryItem.get(product_id=product_id)).available_quantity == 50
    assert await StockHistory.filter(item__product_id=product_id).count() == 1


async def test_inventory_appears_within_a_second_of_the_product_event(client, consumers, publish):
    warm_up = f"product-{uuid.uuid4().hex[:8]}"  # the consumer group has joined once this one is handled
    await publish(PRODUCT_EVENTS, PRODUCT_CREATED, warm_up, product(warm_up, 1))
    await wait_until(lambda: InventoryItem.exists(product_id=warm_up))
    product_id = f"product-{uuid.uuid4().hex[:8]}"
    await publish(PRODUCT_EVENTS, PRODUCT_CREATED, product_id, product(product_id, 100))
    elapsed = await wait_until(lambda: InventoryItem.exists(product_id=product_id))
    print(f"product.created to inventory: {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0


async def test_a_reserve_command_is_answered_on_stock_replies_through_the_relay(
    client, admin, user, consumers, relay, publish, kafka_bootstrap
):
    product_id = f"product-{uuid.uuid4().hex[:8]}"
    order_id = f"order-{uuid.uuid4().hex[:8]}"
    await create_item(client, admin, product_id, 50)
    command = {"order_id": order_id, "items": [{"product_id": product_id, "quantity": 2}]}
    await publish(STOCK_COMMANDS, RESERVE_STOCK, order_id, command)
    await publish(STOCK_COMMANDS, RESERVE_STOCK, order_id, command)  # resent by the saga

    reserved = {"order_id": order_id, "items": [{"product_id": product_id, "quantity": 2}]}
    replies = await messages_for(kafka_bootstrap, STOCK_REPLIES, order_id, 2)
    assert [(headers["event_type"], payload) for headers, payload in replies] == [(STOCK_RESERVED, reserved)] * 2
    assert quantities(await get_item(client, user, product_id)) == (48, 2)
    stock_updates = await messages_for(kafka_bootstrap, STOCK_UPDATES, product_id, 2)
    assert [payload for _, payload in stock_updates] == [
        {"product_id": product_id, "stock": 50},
        {"product_id": product_id, "stock": 48},
    ]
