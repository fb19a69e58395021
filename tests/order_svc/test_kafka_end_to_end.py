"""Through the broker: a product event produced with the envelope headers (as the relay publishes them) reaches
the price read model, the order placed at that price leaves through the real relay as order.placed, and the
saga's verdict on saga-events rejects the order; a stock level from stock-updated refuses an order it cannot
cover, and the consumer's metrics count what it handled."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from common.consumer import EventConsumer
from common.messages import ORDER_PLACED, ORDER_REJECTED, PRODUCT_CREATED, SAGA_REJECTED, STOCK_UPDATED
from common.topics import ORDER_EVENTS, PRODUCT_EVENTS, SAGA_EVENTS, STOCK_UPDATES, ensure_topics
from order_svc.handlers import order_consumers
from order_svc.models import ProductPrice, StockLevel
from outbox_relay.relay import Relay
from tests.order_svc.conftest import ORDERS, SHIPPING_ADDRESS, SMARTPHONE, get_order
from tests.support import messages_for, running_relay, wait_until

Publish = Callable[[str, str, str, dict], Awaitable[None]]


@pytest.fixture(scope="module")
async def consumers(order_app_client, order_settings, kafka_bootstrap) -> AsyncIterator[list[EventConsumer]]:
    """order_svc's consumers, for this module's tests only (joining a group takes the broker seconds)."""
    await ensure_topics(kafka_bootstrap, (PRODUCT_EVENTS, STOCK_UPDATES, SAGA_EVENTS, ORDER_EVENTS))
    running = order_consumers(order_settings)
    await asyncio.gather(*(consumer.start() for consumer in running))
    yield running
    await asyncio.gather(*(consumer.stop() for consumer in running))


@pytest.fixture
async def relay(client, order_settings, kafka_bootstrap) -> AsyncIterator[Relay]:
    """The relay draining order_svc's outbox."""
    async with running_relay([order_settings.database_url], kafka_bootstrap) as running:
        yield running


async def test_a_product_from_the_broker_can_be_ordered_and_the_saga_can_reject_it(
    client, customer, consumers, relay, publish, kafka_bootstrap
):
    product_id = uuid.uuid4().hex[:24]
    product = {**SMARTPHONE, "_id": product_id, "name": "Foldable Phone", "price": 1299.5}
    await publish(PRODUCT_EVENTS, PRODUCT_CREATED, product_id, product)
    await wait_until(lambda: ProductPrice.exists(product_id=product_id))

    line = {"product_id": product_id, "quantity": 2, "price": 1299.5}
    response = await client.post(
        f"{ORDERS}/", json={"items": [line], "shipping_address": SHIPPING_ADDRESS}, headers=customer
    )
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["total_price"] == 2599.0

    [(headers, payload)] = await messages_for(kafka_bootstrap, ORDER_EVENTS, order["_id"], 1)
    assert (headers["event_type"], headers["aggregate_id"]) == (ORDER_PLACED, order["_id"])
    assert headers["correlation_id"] == response.headers["X-Request-ID"]
    assert payload == {"order_id": order["_id"], "user_id": "1", "items": [line], "total_price": 2599.0}

    reason = f"not enough stock for {product_id}"
    await publish(SAGA_EVENTS, SAGA_REJECTED, order["_id"], {"order_id": order["_id"], "reason": reason})

    async def rejected() -> bool:
        return (await get_order(client, customer, order["_id"]))["status"] == "rejected"

    await wait_until(rejected)
    events = await messages_for(kafka_bootstrap, ORDER_EVENTS, order["_id"], 2)
    assert [(headers["event_type"], payload["reason"]) for headers, payload in events[1:]] == [(ORDER_REJECTED, reason)]


async def test_a_stock_level_from_the_broker_refuses_an_order_it_cannot_cover(client, customer, consumers, publish):
    product_id = uuid.uuid4().hex[:24]
    await publish(PRODUCT_EVENTS, PRODUCT_CREATED, product_id, {**SMARTPHONE, "_id": product_id})
    await publish(STOCK_UPDATES, STOCK_UPDATED, product_id, {"product_id": product_id, "stock": 1})
    await wait_until(lambda: StockLevel.exists(product_id=product_id))
    line = {"product_id": product_id, "quantity": 2, "price": SMARTPHONE["price"]}
    response = await client.post(
        f"{ORDERS}/", json={"items": [line], "shipping_address": SHIPPING_ADDRESS}, headers=customer
    )
    assert response.status_code == 409
    assert (response.json()["requested"], response.json()["available"]) == (2, 1)

    (consumer,) = consumers
    registry = consumer.metrics.registry
    labels = {"consumer": consumer.name, "topic": STOCK_UPDATES, "outcome": "handled"}
    assert registry.get_sample_value("consumer_events_total", labels) >= 1
    lags = [
        sample
        for family in registry.collect()
        if family.name == "consumer_lag_messages"
        for sample in family.samples
        if sample.labels["topic"] == STOCK_UPDATES
    ]
    assert lags and min(sample.value for sample in lags) == 0  # caught up with the partition it read
