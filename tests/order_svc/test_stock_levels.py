"""order_svc's view of the stock (stock-updated): an order the known stock cannot cover is refused at once, with
the numbers; the saga stays the authority, so a product without a stock event yet is not refused."""

from datetime import UTC, datetime, timedelta

from tests.order_svc.conftest import (
    CONSUMER,
    HEADPHONES,
    NOTHING_WRITTEN,
    ORDERS,
    SMARTPHONE,
    deliver,
    item,
    order_body,
    received,
    table_counts,
)


def stock_updated(product: dict, stock: int, at: datetime | None = None):
    return received("stock.updated", {"product_id": product["_id"], "stock": stock}, product["_id"], occurred_at=at)


async def test_more_than_the_known_stock_is_409_with_the_numbers(client, customer):
    await deliver(stock_updated(SMARTPHONE, 3))
    response = await client.post(f"{ORDERS}/", json=order_body(item(HEADPHONES), item(SMARTPHONE, 4)), headers=customer)
    assert response.status_code == 409
    body = response.json()
    assert body["message"] == f"Not enough stock of {SMARTPHONE['_id']}: 4 requested, 3 available"
    assert (body["product_id"], body["requested"], body["available"]) == (SMARTPHONE["_id"], 4, 3)
    assert await table_counts() == NOTHING_WRITTEN


async def test_an_order_the_stock_covers_is_placed(client, customer):
    await deliver(stock_updated(SMARTPHONE, 3))
    response = await client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE, 3)), headers=customer)
    assert response.status_code == 201


async def test_no_stock_event_yet_is_not_refused(client, customer):
    response = await client.post(f"{ORDERS}/", json=order_body(item(HEADPHONES, 500)), headers=customer)
    assert response.status_code == 201


async def test_sold_out_is_refused_and_a_restock_lets_orders_through(client, customer):
    await deliver(stock_updated(SMARTPHONE, 0))
    assert (await client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE)), headers=customer)).status_code == 409
    await deliver(stock_updated(SMARTPHONE, 10))
    assert (await client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE)), headers=customer)).status_code == 201


async def test_an_older_level_arriving_late_changes_nothing(client, customer):
    now = datetime.now(UTC)
    await deliver(stock_updated(SMARTPHONE, 0, at=now))
    await deliver(stock_updated(SMARTPHONE, 50, at=now - timedelta(seconds=5)))  # a replay of an older event
    assert (await client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE)), headers=customer)).status_code == 409


async def test_a_batch_keeps_each_products_last_level(client, customer):
    now = datetime.now(UTC)
    levels = [(SMARTPHONE, 5), (HEADPHONES, 0), (SMARTPHONE, 1), (HEADPHONES, 7)]
    await CONSUMER.apply([stock_updated(p, s, at=now + timedelta(milliseconds=n)) for n, (p, s) in enumerate(levels)])
    refused = await client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE, 2)), headers=customer)
    assert refused.json()["available"] == 1
    placed = await client.post(f"{ORDERS}/", json=order_body(item(HEADPHONES, 7)), headers=customer)
    assert placed.status_code == 201
