"""Scenario 1: the relay SIGKILLed twice during a burst of 1,000 orders: once from outside at an arbitrary
moment, once by itself, as a faulty relay (tests/faulty_relay.py) in its place, right after a publication the
broker acknowledged and before it was marked published (so those events go out twice). Nothing is lost, nothing
applies twice."""

import asyncio

import pytest

from tests.cluster import new_customer
from tests.failure.support import (
    Burst,
    change_orders,
    check_invariants,
    email,
    faulty_relay,
    unpublished,
    wait_for_sagas,
)
from tests.system.conftest import create_product, order_body

ORDERS = 1000
PRODUCTS = 4


@pytest.mark.scenario(number=1, title="relay SIGKILLed mid-burst", fault="SIGKILL relay x2 during 1,000 orders")
async def test_relay_killed_during_a_burst(cluster, api, admin, scenario):
    products = [await create_product(api, admin, quantity=400) for _ in range(PRODUCTS)]
    customer = await new_customer(api, email("burst"))
    bodies = [order_body(products[n % PRODUCTS]) for n in range(ORDERS)]
    scenario.orders = ORDERS
    burst = Burst(api, customer, bodies, concurrency=50).start()
    await burst.until_answered(250)
    cluster.kill("outbox_relay")
    scenario.inject(f"SIGKILL outbox_relay after {burst.answered} orders answered")
    await asyncio.sleep(1)
    stranded = await unpublished(cluster, "ORDER_DATABASE_URL")
    await cluster.restart("outbox_relay")
    scenario.inject(f"outbox_relay restarted ({stranded} order events were waiting)")

    await burst.until_answered(600)
    # A faulty relay in its place: SIGKILL right after its 5th publication, acknowledged but not marked.
    async with faulty_relay(cluster, FAULT_KILL_AFTER_PUBLISH="5") as relay:
        scenario.inject(f"a faulty relay started with FAULT_KILL_AFTER_PUBLISH=5 at {burst.answered} orders")
        try:
            await asyncio.to_thread(relay.start)
        except RuntimeError:
            pass  # it may kill itself before it even listens
        await asyncio.to_thread(relay.process.wait, 60)
        scenario.inject(
            f"the faulty relay killed itself after publishing, before marking (exit {relay.process.returncode})"
        )
    scenario.inject("outbox_relay restarted")
    await burst.finished()
    scenario.measure(placed=dict(burst.outcomes), place_seconds=round(burst.seconds, 1), orders_per_second=burst.rate)
    assert burst.outcomes == {201: ORDERS}

    await wait_for_sagas(cluster, burst.order_ids, {"AWAITING_PAYMENT": ORDERS})
    # The rest of the saga runs through the restarted relay too: a tenth paid, a tenth cancelled.
    paid, cancelled = burst.order_ids[:100], burst.order_ids[100:200]
    assert await change_orders(api, customer, paid, "paid") == {200: 100}
    assert await change_orders(api, customer, cancelled, "cancel") == {204: 100}
    await wait_for_sagas(cluster, burst.order_ids, {"AWAITING_PAYMENT": 800, "COMPLETED": 100, "CANCELLED": 100})
    await check_invariants(cluster, scenario)
    items = [(await api.get(f"/inventory/{product_id}", headers=admin)).json() for product_id in products]
    available = sum(item["available_quantity"] for item in items)
    reserved = sum(item["reserved_quantity"] for item in items)
    assert (available, reserved) == (PRODUCTS * 400 - ORDERS + 100, 800)  # 100 confirmed units left the store
