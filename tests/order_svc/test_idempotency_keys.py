"""POST /orders with an Idempotency-Key: a client that sends an order again (after a timeout, say) gets the first
answer and no second order; the same key with another order is a 409; keys belong to their customer."""

import asyncio

from tortoise import connections
from tortoise.transactions import in_transaction

from common.messages import PRODUCT_UPDATED, STOCK_UPDATED
from order_svc.orders import DB
from tests.order_svc.conftest import (
    HEADPHONES,
    NOTHING_WRITTEN,
    ORDERS,
    SMARTPHONE,
    deliver,
    item,
    order_body,
    outbox_events,
    received,
    table_counts,
)
from tests.support import wait_until

KEY = {"Idempotency-Key": "checkout-5b1f0e6a"}


async def test_the_same_order_sent_again_gets_the_first_answer(client, customer):
    first = await client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE)), headers={**customer, **KEY})
    again = await client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE)), headers={**customer, **KEY})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await table_counts() == {"orders": 1, "order_items": 1, "outbox": 1}
    assert len(await outbox_events("order.placed")) == 1


async def test_concurrent_sends_of_one_key_place_one_order(client, customer):
    sends = [
        client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE, 2)), headers={**customer, **KEY}) for _ in range(8)
    ]
    answers = await asyncio.gather(*sends)
    assert {answer.status_code for answer in answers} == {201}
    assert len({answer.json()["_id"] for answer in answers}) == 1
    assert await table_counts() == {"orders": 1, "order_items": 1, "outbox": 1}


async def test_the_same_key_for_another_order_is_409(client, customer):
    first = await client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE)), headers={**customer, **KEY})
    other = await client.post(f"{ORDERS}/", json=order_body(item(HEADPHONES)), headers={**customer, **KEY})
    assert first.status_code == 201
    assert other.status_code == 409
    assert other.json()["error"] == "conflict"
    assert other.json()["field"] == "Idempotency-Key"
    assert "another request" in other.json()["message"]
    assert await table_counts() == {"orders": 1, "order_items": 1, "outbox": 1}


async def test_keys_belong_to_their_customer(client, customer, other_customer):
    body = order_body(item(SMARTPHONE), user_id=None)  # each for the signed-in customer
    mine = await client.post(f"{ORDERS}/", json=body, headers={**customer, **KEY})
    theirs = await client.post(f"{ORDERS}/", json=body, headers={**other_customer, **KEY})
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["_id"] != theirs.json()["_id"]


async def test_a_refused_order_keeps_its_refusal_under_its_key(client, customer):
    """The refusal is the key's answer: sent again, the same order is refused again, even once it would pass (a
    first send still on its way must not place it after the client was told no); a corrected order needs a new
    key."""
    wrong_price = order_body({**item(SMARTPHONE), "price": 1.0})
    refused = await client.post(f"{ORDERS}/", json=wrong_price, headers={**customer, **KEY})
    assert refused.status_code == 409
    assert await table_counts() == NOTHING_WRITTEN
    await deliver(received(PRODUCT_UPDATED, {**SMARTPHONE, "price": 1.0}, SMARTPHONE["_id"]))
    again = await client.post(f"{ORDERS}/", json=wrong_price, headers={**customer, **KEY})
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (409, "true"), again.text
    assert again.json()["message"] == refused.json()["message"]
    corrected = await client.post(f"{ORDERS}/", json=wrong_price, headers={**customer, "Idempotency-Key": "new-key"})
    assert corrected.status_code == 201, corrected.text
    assert await table_counts() == {"orders": 1, "order_items": 1, "outbox": 1}


async def test_a_malformed_key_is_400_and_writes_nothing(client, customer):
    for key in ("", "x" * 256, "caf\u00e9".encode()):
        response = await client.post(
            f"{ORDERS}/", json=order_body(item(SMARTPHONE)), headers={**customer, "Idempotency-Key": key}
        )
        assert response.status_code == 400, key
        assert response.json()["field"] == "Idempotency-Key"
    assert await table_counts() == NOTHING_WRITTEN


async def test_a_retry_gets_its_order_even_when_the_stock_it_took_is_gone(client, customer):
    """The first send placed the order (its answer lost); the retry now finds fewer units known than it asks for:
    it gets the first answer, not a refusal."""
    await deliver(received(STOCK_UPDATED, {"product_id": SMARTPHONE["_id"], "stock": 2}, SMARTPHONE["_id"]))
    first = await client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE, 2)), headers={**customer, **KEY})
    assert first.status_code == 201
    await deliver(received(STOCK_UPDATED, {"product_id": SMARTPHONE["_id"], "stock": 0}, SMARTPHONE["_id"]))
    again = await client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE, 2)), headers={**customer, **KEY})
    assert (again.status_code, again.json()["_id"]) == (201, first.json()["_id"])


async def test_a_refused_retry_waits_for_its_first_send_still_being_written(client, customer):
    """The first send is still being written (its client timed out and sent it again) when the retry finds too few
    units known: the retry waits for the first to commit and gets its order, rather than a refusal that would leave
    the client unaware of the order the first then places. (Found by the soak: 3 orders in 11,802.)"""
    await deliver(received(STOCK_UPDATED, {"product_id": SMARTPHONE["_id"], "stock": 2}, SMARTPHONE["_id"]))
    first = await client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE, 2)), headers={**customer, **KEY})
    assert first.status_code == 201
    await deliver(received(STOCK_UPDATED, {"product_id": SMARTPHONE["_id"], "stock": 0}, SMARTPHONE["_id"]))
    orders = connections.get(DB)
    (written,) = await orders.execute_query_dict("DELETE FROM idempotency_keys RETURNING *")
    async with in_transaction(DB) as first_send:  # the first send's key, inserted and not yet committed
        await first_send.execute_query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, status, response) VALUES ($1, $2, $3, $4, $5)",
            [written["scope"], written["key"], written["fingerprint"], written["status"], written["response"]],
        )
        retry = asyncio.ensure_future(
            client.post(f"{ORDERS}/", json=order_body(item(SMARTPHONE, 2)), headers={**customer, **KEY})
        )
        await wait_until(lambda: _answered_or_waiting(retry), timeout=30)
    again = await retry
    assert (again.status_code, again.json().get("_id")) == (201, first.json()["_id"]), again.text


async def _answered_or_waiting(retry: asyncio.Future) -> bool:
    if retry.done():
        return True
    rows = await connections.get(DB).execute_query_dict(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    return rows[0]["n"] > 0
