"""saga-events: saga.rejected makes a pending or paid order rejected, with the reason; saga.expired cancels a
still pending order ("payment deadline passed"). Each writes its order event with the verdict as its cause; an
order already past the verdict keeps its status, and a redelivered verdict changes nothing."""

import uuid

import pytest
from pydantic import ValidationError

from common.consumer import ReceivedEvent
from common.messages import ORDER_CANCELLED, ORDER_PLACED, ORDER_REJECTED, SAGA_EXPIRED, SAGA_REJECTED
from tests.order_svc.conftest import deliver, get_order, outbox_events, place, received, set_status

STEPS_TO = {"cancelled": ["cancelled"], "shipped": ["paid", "shipped"], "delivered": ["paid", "shipped", "delivered"]}
REASON = "not enough stock for 6650a1b2c3d4e5f601234561: 1 requested, 0 available"


def rejected(order_id: str, event_id: uuid.UUID | None = None) -> ReceivedEvent:
    return received(SAGA_REJECTED, {"order_id": order_id, "reason": REASON}, order_id, event_id)


def expired(order_id: str, event_id: uuid.UUID | None = None) -> ReceivedEvent:
    return received(SAGA_EXPIRED, {"order_id": order_id}, order_id, event_id)


async def events_of(order_id: str) -> list[dict]:
    return [event for event in await outbox_events() if event["aggregate_id"] == order_id]


@pytest.mark.parametrize("paid", [False, True])
async def test_a_rejected_order_shows_the_reason(client, customer, admin, paid):
    order = await place(client, customer)
    if paid:
        await set_status(client, customer, order["_id"], "paid")
    verdict = rejected(order["_id"])
    await deliver(verdict)
    shown = await get_order(client, customer, order["_id"])
    assert (shown["status"], shown["status_reason"]) == ("rejected", REASON)
    assert list(shown)[-1] == "status_reason"  # after the seed's fields, which keep their order
    event = (await events_of(order["_id"]))[-1]
    assert event["event_type"] == ORDER_REJECTED
    assert event["payload"] == {"order_id": order["_id"], "user_id": "1", "status": "rejected", "reason": REASON}
    assert event["headers"]["causation_id"] == str(verdict.id)


async def test_an_expired_order_is_cancelled(client, customer):
    order = await place(client, customer)
    verdict = expired(order["_id"])
    await deliver(verdict)
    shown = await get_order(client, customer, order["_id"])
    assert (shown["status"], shown["status_reason"]) == ("cancelled", "payment deadline passed")
    event = (await events_of(order["_id"]))[-1]
    assert event["event_type"] == ORDER_CANCELLED
    assert event["payload"]["reason"] == "payment deadline passed"
    assert event["headers"]["causation_id"] == str(verdict.id)


@pytest.mark.parametrize("status", ["cancelled", "shipped", "delivered"])
async def test_a_rejection_after_the_fact_changes_nothing(client, customer, admin, status):
    order_id = (await place(client, customer))["_id"]
    for step in STEPS_TO[status]:
        await set_status(client, admin, order_id, step)
    before = await get_order(client, customer, order_id)
    events_before = await events_of(order_id)
    await deliver(rejected(order_id))
    assert await get_order(client, customer, order_id) == before
    assert await events_of(order_id) == events_before


@pytest.mark.parametrize("status", ["paid", "cancelled"])
async def test_an_expiry_of_an_order_no_longer_pending_changes_nothing(client, customer, status):
    order_id = (await place(client, customer))["_id"]
    await set_status(client, customer, order_id, status)
    before = await get_order(client, customer, order_id)
    await deliver(expired(order_id))
    assert await get_order(client, customer, order_id) == before
    assert len(await events_of(order_id)) == 2


async def test_a_redelivered_verdict_changes_nothing(client, customer):
    order_id = (await place(client, customer))["_id"]
    event_id = uuid.uuid4()
    await deliver(rejected(order_id, event_id))
    await deliver(rejected(order_id, event_id))
    await deliver(rejected(order_id))  # the same verdict sent again under a new id
    await deliver(expired(order_id))
    assert [event["event_type"] for event in await events_of(order_id)] == [ORDER_PLACED, ORDER_REJECTED]
    assert (await get_order(client, customer, order_id))["status"] == "rejected"


@pytest.mark.parametrize("order_id", [str(uuid.uuid4()), "not-an-order-id"])
async def test_a_verdict_on_an_unknown_order_is_ignored(client, order_id):
    await deliver(rejected(order_id))
    await deliver(expired(order_id))
    assert await outbox_events() == []


@pytest.mark.parametrize(
    ("event_type", "payload"), [(SAGA_REJECTED, {"order_id": "x"}), (SAGA_EXPIRED, {}), (SAGA_REJECTED, None)]
)
async def test_a_malformed_verdict_is_refused(client, event_type, payload):
    with pytest.raises(ValidationError):
        await deliver(received(event_type, payload, "x"))  # the consumer retries, then dead-letters it
