"""GET /api/v1/sagas/{order_id} (owner or admin), GET /api/v1/sagas (admin; a customer with order_ids), POST
.../retry (admin)."""

import asyncio
import uuid

from tortoise.transactions import in_transaction

from saga.timer import handle_due_sagas
from tests.saga.conftest import cause, orchestrator, place, relay_publishes, run, stock_reserved
from tests.support import bearer


async def test_owner_and_admin_see_the_steps_others_do_not(client, issuer):
    saga = orchestrator()
    order_id = await place(saga, user_id=7)
    await run(stock_reserved(saga), order_id)
    response = await client.get(f"/api/v1/sagas/{order_id}", headers=bearer(issuer, 7, "user"))
    assert response.status_code == 200
    body = response.json()
    assert (body["order_id"], body["user_id"], body["state"]) == (order_id, "7", "AWAITING_PAYMENT")
    assert [(s["step"], s["state"], s["attempts"]) for s in body["steps"]] == [
        ("reserve", "succeeded", 1),
        ("await_payment", "running", 0),
    ]
    assert body["steps"][0]["finished_at"] >= body["steps"][0]["started_at"]
    assert (await client.get(f"/api/v1/sagas/{order_id}", headers=bearer(issuer, 1, "admin"))).status_code == 200
    assert (await client.get(f"/api/v1/sagas/{order_id}", headers=bearer(issuer, 8, "user"))).status_code == 404
    assert (await client.get("/api/v1/sagas/not-a-uuid", headers=bearer(issuer, 7, "user"))).status_code == 404
    assert (await client.get(f"/api/v1/sagas/{order_id}")).status_code == 401


async def test_admin_lists_sagas_by_state(client, issuer):
    saga = orchestrator()
    first = await place(saga)
    second = await place(saga)
    await run(stock_reserved(saga), second)
    admin = bearer(issuer, 1, "admin")
    listed = (await client.get("/api/v1/sagas?state=RESERVING", headers=admin)).json()
    assert [entry["order_id"] for entry in listed] == [first]
    everything = (await client.get("/api/v1/sagas?limit=10", headers=admin)).json()
    assert [entry["order_id"] for entry in everything] == [second, first]
    assert (await client.get("/api/v1/sagas", headers=bearer(issuer, 7, "user"))).status_code == 403
    bad = await client.get("/api/v1/sagas?state=NAPPING", headers=admin)
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"] == "state"


async def test_a_customer_lists_the_sagas_of_named_orders_of_theirs_in_one_request(client, issuer):
    saga = orchestrator()
    mine = [await place(saga, user_id=7) for _ in range(3)]
    theirs = await place(saga, user_id=8)
    await run(stock_reserved(saga), mine[1])
    unknown = str(uuid.uuid4())  # no saga (yet): left out
    named = ",".join([*mine, theirs, unknown])

    listed = (await client.get(f"/api/v1/sagas?order_ids={named}", headers=bearer(issuer, 7, "user"))).json()
    assert {entry["order_id"]: entry["state"] for entry in listed} == {
        mine[0]: "RESERVING",
        mine[1]: "AWAITING_PAYMENT",
        mine[2]: "RESERVING",
    }
    admin = (await client.get(f"/api/v1/sagas?order_ids={named}", headers=bearer(issuer, 1, "admin"))).json()
    assert {entry["order_id"] for entry in admin} == {*mine, theirs}

    too_many = ",".join(str(uuid.uuid4()) for _ in range(101))
    for bad in ("not-a-uuid", too_many):
        refused = await client.get(f"/api/v1/sagas?order_ids={bad}", headers=bearer(issuer, 7, "user"))
        assert refused.status_code == 422
        assert refused.json()["fields"][0]["field"].startswith("order_ids")


async def test_admin_retries_a_failed_saga(client, issuer):
    saga = orchestrator(step_timeout=0.01, step_max_attempts=1)
    order_id = await place(saga)
    await relay_publishes()
    await asyncio.sleep(0.05)
    await handle_due_sagas(saga)
    admin = bearer(issuer, 1, "admin")
    assert (await client.get(f"/api/v1/sagas/{order_id}", headers=admin)).json()["state"] == "FAILED"

    retried = await client.post(f"/api/v1/sagas/{order_id}/retry", headers=admin)
    assert retried.status_code == 200
    assert retried.json()["state"] == "RESERVING"
    assert [(s["step"], s["state"]) for s in retried.json()["steps"]] == [("reserve", "failed"), ("reserve", "running")]
    again = await client.post(f"/api/v1/sagas/{order_id}/retry", headers=admin)
    assert again.status_code == 409
    assert (await client.post(f"/api/v1/sagas/{order_id}/retry", headers=bearer(issuer, 7, "user"))).status_code == 403


async def test_the_messages_that_moved_the_saga_and_those_it_sent(client, issuer):
    saga = orchestrator()
    order_id = str(uuid.uuid4())
    placed = cause("order.placed", "order-events")
    payload = {"order_id": order_id, "user_id": "7", "items": [{"product_id": "p-1", "quantity": 1}]}
    async with in_transaction("saga") as connection:
        await saga.orders_placed(connection, [(payload, placed)])
    reserved = cause("stock.reserved", "stock-replies")
    async with in_transaction("saga") as connection:
        await saga.stocks_reserved(connection, [(order_id, reserved)])
    async with in_transaction("saga") as connection:
        await saga.stocks_reserved(connection, [(order_id, cause("stock.reserved", "stock-replies"))])  # a duplicate

    body = (await client.get(f"/api/v1/sagas/{order_id}", headers=bearer(issuer, 7, "user"))).json()
    logged = [(m["direction"], m["event_type"], m["topic"]) for m in body["messages"]]
    assert logged == [
        ("received", "order.placed", "order-events"),
        ("sent", "stock.reserve", "stock-commands"),
        ("received", "stock.reserved", "stock-replies"),  # the duplicate moved nothing: not logged
    ]
    received, command = body["messages"][0], body["messages"][1]
    assert received["event_id"] == str(placed.id)
    assert command["causation_id"] == str(placed.id)
    assert command["event_id"] == body["steps"][0]["command_id"]
    assert body["messages"][2]["event_id"] == str(reserved.id)
