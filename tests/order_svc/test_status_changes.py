"""PUT /orders/{id}/status and DELETE /orders/{id}: pending -> paid and pending -> cancelled by the owner or an
admin, paid -> shipped -> delivered by an admin only; any other change is 409 naming both states and changes
nothing; racing changes of one order are serialised, so exactly one of them wins."""

import asyncio

import pytest

from common.messages import SAGA_REJECTED
from tests.order_svc.conftest import ORDERS, deliver, get_order, outbox_events, place, received, set_status

STATUSES = ["pending", "paid", "shipped", "delivered", "cancelled", "rejected"]
ALLOWED = {("pending", "paid"), ("pending", "cancelled"), ("paid", "shipped"), ("shipped", "delivered")}


async def order_in(client, customer, admin, status: str) -> str:
    """The id of a new order of the customer, brought to `status` the way the system would."""
    order_id = (await place(client, customer))["_id"]
    path = {
        "pending": [],
        "paid": ["paid"],
        "shipped": ["paid", "shipped"],
        "delivered": ["paid", "shipped", "delivered"],
        "cancelled": ["cancelled"],
    }
    if status == "rejected":
        await deliver(received(SAGA_REJECTED, {"order_id": order_id, "reason": "out of stock"}, order_id))
    for step in path.get(status, []):
        assert (await set_status(client, admin, order_id, step)).status_code == 200
    assert (await get_order(client, customer, order_id))["status"] == status
    return order_id


async def test_the_customer_pays_and_the_admin_ships_and_delivers(client, customer, admin):
    order_id = (await place(client, customer))["_id"]
    for headers, status in ((customer, "paid"), (admin, "shipped"), (admin, "delivered")):
        response = await set_status(client, headers, order_id, status)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
    assert (await get_order(client, customer, order_id))["status"] == "delivered"


async def test_an_admin_may_pay_or_cancel_a_customers_order(client, customer, admin):
    paid, cancelled, deleted = [(await place(client, customer))["_id"] for _ in range(3)]
    assert (await set_status(client, admin, paid, "paid")).json()["status"] == "paid"
    assert (await set_status(client, admin, cancelled, "cancelled")).json()["status"] == "cancelled"
    assert (await client.delete(f"{ORDERS}/{deleted}", headers=admin)).status_code == 204
    assert (await get_order(client, customer, deleted))["status"] == "cancelled"


async def test_the_customer_cancels_with_put_as_with_delete(client, customer):
    order_id = (await place(client, customer))["_id"]
    response = await set_status(client, customer, order_id, "cancelled")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"


@pytest.mark.parametrize(("start", "target"), [("paid", "shipped"), ("shipped", "delivered")])
async def test_only_an_admin_ships_and_delivers(client, customer, admin, start, target):
    order_id = await order_in(client, customer, admin, start)
    events_before = len(await outbox_events())
    response = await set_status(client, customer, order_id, target)
    assert response.status_code == 403
    assert response.json()["message"] == f"Only an admin can mark an order {target}"
    assert (await get_order(client, customer, order_id))["status"] == start
    assert len(await outbox_events()) == events_before


@pytest.mark.parametrize(("start", "target"), [(s, t) for s in STATUSES for t in STATUSES if (s, t) not in ALLOWED])
async def test_any_other_change_is_409_naming_both_states(client, customer, admin, start, target):
    order_id = await order_in(client, customer, admin, start)
    events_before = await outbox_events()
    for headers in (customer, admin):
        response = await set_status(client, headers, order_id, target)
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["message"] == f"cannot change an order from {start} to {target}"
        assert (body["current"], body["requested"]) == (start, target)
    assert (await get_order(client, customer, order_id))["status"] == start
    assert await outbox_events() == events_before


@pytest.mark.parametrize("start", ["paid", "shipped", "delivered", "cancelled", "rejected"])
async def test_only_a_pending_order_can_be_deleted(client, customer, admin, start):
    order_id = await order_in(client, customer, admin, start)
    response = await client.delete(f"{ORDERS}/{order_id}", headers=customer)
    assert response.status_code == 409
    assert response.json()["message"] == f"cannot change an order from {start} to cancelled"
    assert (await get_order(client, customer, order_id))["status"] == start


@pytest.mark.parametrize(
    ("body", "status"),
    [({"status": "refunded"}, 422), ({"status": None}, 422), ({}, 422), ({"status": "paid", "x": 1}, 422)],
)
async def test_an_unknown_status_is_422(client, customer, body, status):
    order_id = (await place(client, customer))["_id"]
    response = await client.put(f"{ORDERS}/{order_id}/status", json=body, headers=customer)
    assert response.status_code == status
    assert response.json()["fields"][0]["field"] in {"status", "x"}
    assert (await get_order(client, customer, order_id))["status"] == "pending"


async def test_changing_a_status_needs_a_token(client, customer):
    order_id = (await place(client, customer))["_id"]
    assert (await client.put(f"{ORDERS}/{order_id}/status", json={"status": "paid"})).status_code == 401
    assert (await client.delete(f"{ORDERS}/{order_id}")).status_code == 401
    assert (await get_order(client, customer, order_id))["status"] == "pending"


async def test_a_racing_payment_and_cancellation_have_one_winner(client, customer):
    order_ids = [(await place(client, customer))["_id"] for _ in range(10)]

    async def pay(order_id: str) -> int:
        return (await set_status(client, customer, order_id, "paid")).status_code

    async def cancel(order_id: str) -> int:
        return (await client.delete(f"{ORDERS}/{order_id}", headers=customer)).status_code

    results = await asyncio.gather(*(asyncio.gather(pay(o), cancel(o)) for o in order_ids))
    for order_id, (paid, cancelled) in zip(order_ids, results, strict=True):
        assert sorted((paid, cancelled)) in ([200, 409], [204, 409]), (paid, cancelled)
        winner = "paid" if paid == 200 else "cancelled"
        assert (await get_order(client, customer, order_id))["status"] == winner
        events = [event["event_type"] for event in await outbox_events() if event["aggregate_id"] == order_id]
        assert events == ["order.placed", f"order.{winner}"]


async def test_racing_payments_pay_once(client, customer, admin):
    order_id = (await place(client, customer))["_id"]
    statuses = await asyncio.gather(*(set_status(client, h, order_id, "paid") for h in [customer, admin] * 4))
    assert sorted(response.status_code for response in statuses) == [200] + [409] * 7
    assert len(await outbox_events("order.paid")) == 1
