"""The seed guide's steps 5.2 to 6.4, request for request, with its prices in the read model: the shapes of its
responses (key order included), the total 609.97, the list newest first, paying, and cancelling."""

import re
from datetime import datetime

from tests.order_svc.conftest import HEADPHONES, ORDERS, SHIPPING_ADDRESS, SMARTPHONE, WATCH, order_body

ORDER_KEYS = ["_id", "user_id", "items", "total_price", "status", "shipping_address", "created_at", "updated_at"]
UTC_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$")


def expected(order: dict, items: list[dict], total: float, status: str) -> dict:
    """The seed's order, with the ids and times the server chose."""
    return {
        "_id": order["_id"],
        "user_id": "1",
        "items": items,
        "total_price": total,
        "status": status,
        "shipping_address": SHIPPING_ADDRESS,
        "created_at": order["created_at"],
        "updated_at": order["updated_at"],
    }


async def test_seed_steps_5_2_to_6_4(client, customer):
    # 5.2: one smartphone.
    single = [{"product_id": SMARTPHONE["_id"], "quantity": 1, "price": 899.99}]
    response = await client.post(f"{ORDERS}/", json=order_body(*single), headers=customer)
    assert response.status_code == 201, response.text
    order_1 = response.json()
    assert list(order_1) == ORDER_KEYS
    assert order_1 == expected(order_1, single, 899.99, "pending")
    assert order_1["created_at"] == order_1["updated_at"]
    assert UTC_ISO.match(order_1["created_at"])

    # 5.3: headphones and two watches: 249.99 + 2 x 179.99 = 609.97 exactly (the body carries it as 609.97).
    several = [
        {"product_id": HEADPHONES["_id"], "quantity": 1, "price": 249.99},
        {"product_id": WATCH["_id"], "quantity": 2, "price": 179.99},
    ]
    response = await client.post(f"{ORDERS}/", json=order_body(*several), headers=customer)
    assert response.status_code == 201, response.text
    assert '"total_price":609.97' in response.text
    order_2 = response.json()
    assert order_2 == expected(order_2, several, 609.97, "pending")

    # 6.1: the first order's details.
    details = await client.get(f"{ORDERS}/{order_1['_id']}", headers=customer)
    assert details.status_code == 200
    assert details.json() == order_1
    assert list(details.json()) == ORDER_KEYS

    # 6.2: both orders, newest first.
    listed = await client.get(f"{ORDERS}/", headers=customer)
    assert listed.status_code == 200
    assert listed.json() == [order_2, order_1]

    # 6.3: pay the first order; only its status and updated_at change.
    paid = await client.put(f"{ORDERS}/{order_1['_id']}/status", json={"status": "paid"}, headers=customer)
    assert paid.status_code == 200, paid.text
    assert paid.json() == {**order_1, "status": "paid", "updated_at": paid.json()["updated_at"]}
    assert datetime.fromisoformat(paid.json()["updated_at"]) > datetime.fromisoformat(order_1["updated_at"])

    # 6.4: cancel the second order: 204 with no body, then it shows as cancelled.
    cancelled = await client.delete(f"{ORDERS}/{order_2['_id']}", headers=customer)
    assert cancelled.status_code == 204
    assert cancelled.content == b""
    after = await client.get(f"{ORDERS}/{order_2['_id']}", headers=customer)
    assert after.json() == {**order_2, "status": "cancelled", "updated_at": after.json()["updated_at"]}
    assert list(after.json()) == ORDER_KEYS
