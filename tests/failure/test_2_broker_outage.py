"""Scenario 2: the broker SIGKILLed in the middle of a burst of orders, down for 10 s, then started again on its
data while every other process keeps running. Orders placed and paid during the outage are committed with their
events, which the relay publishes once the broker is back; what the broker had acknowledged before the kill is
still there (topics, messages, the consumers' committed offsets). Every order reaches its reservation, every
payment its confirmation."""

import asyncio
import time

import pytest

from tests.cluster import new_customer
from tests.failure.support import (
    Burst,
    change_orders,
    check_invariants,
    email,
    sagas_in,
    unpublished,
    wait_for_sagas,
)
from tests.system.conftest import create_product, order_body

BEFORE, DURING = 400, 200
OUTAGE_SECONDS = 10


@pytest.mark.scenario(number=2, title="broker SIGKILLed for 10 s", fault="SIGKILL broker mid-burst, restart 10 s later")
async def test_broker_outage(cluster, api, admin, scenario):
    products = [await create_product(api, admin, quantity=700) for _ in range(2)]
    customer = await new_customer(api, email("outage"))
    scenario.orders = BEFORE + DURING
    before = Burst(api, customer, [order_body(products[n % 2]) for n in range(BEFORE)]).start()
    await before.until_answered(BEFORE // 2)
    cluster.kill("broker")
    stopped = time.monotonic()
    scenario.inject(f"broker SIGKILLed after {before.answered} of {BEFORE} orders answered")
    await before.finished()
    assert before.outcomes == {201: BEFORE}

    during = await Burst(api, customer, [order_body(products[n % 2]) for n in range(DURING)]).run()
    paid = (await sagas_in(cluster, before.order_ids, "AWAITING_PAYMENT"))[:50]  # reserved before the kill
    assert paid, "no order reached its reservation before the kill"
    payments = await change_orders(api, customer, paid, "paid")
    scenario.measure(placed_during_outage=dict(during.outcomes), paid_during_outage=dict(payments))
    assert during.outcomes == {201: DURING}
    assert payments == {200: len(paid)}
    await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
    waiting = await unpublished(cluster, "ORDER_DATABASE_URL")
    scenario.measure(order_events_waiting=waiting)
    assert waiting >= DURING + len(paid)  # nothing could be published, nothing was dead-lettered

    await cluster.restart("broker")
    scenario.inject(f"broker started again on its data after {time.monotonic() - stopped:.1f} s")
    started = time.monotonic()
    unpaid = [order_id for order_id in [*before.order_ids, *during.order_ids] if order_id not in set(paid)]
    await wait_for_sagas(cluster, unpaid, {"AWAITING_PAYMENT": len(unpaid)})
    await wait_for_sagas(cluster, paid, {"COMPLETED": len(paid)})
    scenario.measure(recovery_seconds=round(time.monotonic() - started, 1))
    await check_invariants(cluster, scenario)
