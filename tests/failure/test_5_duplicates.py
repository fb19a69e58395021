"""Scenario 5: every event delivered three times. A faulty relay (tests/faulty_relay.py, FAULT_PUBLISH_COPIES=3)
runs in the relay's place: each batch is published three times in a row, so every consumer sees every event three
times, interleaved with the events that follow it (as after relays that crashed between publishing and marking).
Products are created, orders placed, rejected, paid and cancelled: every effect is applied once."""

import pytest

from common.topics import ORDER_EVENTS
from tests.cluster import new_customer
from tests.failure.support import (
    Burst,
    change_orders,
    check_invariants,
    email,
    faulty_relay,
    messages_per_key,
    order_statuses,
    sagas_in,
    wait_for_sagas,
)
from tests.system.conftest import create_product, order_body

COPIES = 3
ORDERS, SCARCE_ORDERS, SCARCE_UNITS = 200, 30, 5
CHANGED = 40  # paid, and as many cancelled


@pytest.mark.scenario(number=5, title="every event delivered 3 times", fault="FAULT_PUBLISH_COPIES=3")
async def test_every_event_delivered_three_times(cluster, api, admin, scenario):
    async with faulty_relay(cluster, FAULT_PUBLISH_COPIES=str(COPIES)):
        await cluster.restart("outbox_relay")
        scenario.inject(f"a faulty relay started with FAULT_PUBLISH_COPIES={COPIES}")
        plenty = await create_product(api, admin, quantity=500)
        scarce = await create_product(api, admin, quantity=SCARCE_UNITS)  # rejections: compensation, verdicts
        customer = await new_customer(api, email("duplicates"))
        bodies = [order_body(plenty) for _ in range(ORDERS)] + [order_body(scarce) for _ in range(SCARCE_ORDERS)]
        scenario.orders = len(bodies)
        with cluster.relays_paused():  # the scarce orders all reach the saga (rejections, compensations)
            burst = await Burst(api, customer, bodies, concurrency=50).run()
        assert burst.outcomes == {201: len(bodies)}
        rejected = SCARCE_ORDERS - SCARCE_UNITS
        await wait_for_sagas(
            cluster, burst.order_ids, {"AWAITING_PAYMENT": len(bodies) - rejected, "REJECTED": rejected}
        )

        waiting = sorted(await sagas_in(cluster, burst.order_ids, "AWAITING_PAYMENT"))
        paid, cancelled = waiting[:CHANGED], waiting[CHANGED : 2 * CHANGED]
        assert await change_orders(api, customer, paid, "paid") == {200: CHANGED}
        assert await change_orders(api, customer, cancelled, "cancel") == {204: CHANGED}
        expected = {
            "AWAITING_PAYMENT": len(bodies) - rejected - 2 * CHANGED,
            "REJECTED": rejected,
            "COMPLETED": CHANGED,
            "CANCELLED": CHANGED,
        }
        await wait_for_sagas(cluster, burst.order_ids, expected)

        # The fault was real: every order event is on the topic three times (at least).
        copies = await messages_per_key(cluster.stack.bootstrap_servers, ORDER_EVENTS, set(burst.order_ids))
        per_event = sorted(set(copies.values()))
        scenario.measure(placed=dict(burst.outcomes), order_event_copies=per_event, order_events=len(copies))
        assert len(copies) == len(bodies) + 2 * CHANGED + rejected  # placed; paid or cancelled; rejected
        assert min(copies.values()) >= COPIES
    scenario.inject("outbox_relay restarted")

    await check_invariants(cluster, scenario)
    assert await order_statuses(cluster, burst.order_ids) == {
        "pending": len(bodies) - rejected - 2 * CHANGED,
        "rejected": rejected,
        "paid": CHANGED,
        "cancelled": CHANGED,
    }
