"""Scenario 2: the broker stopped for 10 s and started again, empty (tansu keeps messages in memory): orders
placed and paid during the outage are committed with their events, which the relay publishes once the broker is
back. Every order placed during the outage completes its reservation, every payment its confirmation.

tansu (memory storage) after a restart: the relay publishes into topics the restarted broker has no metadata for
(its producer still knows them), fetching them works, but the broker refuses every offset commit for them
(UnknownTopicOrPartition) from then on. Consumers go on (commits are bounded in common/consumer.py; the inbox makes
the redeliveries harmless) but every commit costs its timeout, so this scenario leaves its cluster to no other."""

import asyncio
import time

import pytest

from tests.cluster import new_customer
from tests.failure.support import (
    Burst,
    change_orders,
    check_invariants,
    email,
    unpublished,
    wait_for_sagas,
)
from tests.system.conftest import create_product, order_body

BEFORE, DURING = 200, 200
OUTAGE_SECONDS = 10


@pytest.mark.scenario(number=2, title="broker down for 10 s", fault="broker stopped 10 s, restarted empty")
async def test_broker_outage(cluster, api, admin, scenario, shared_cluster):
    products = [await create_product(api, admin, quantity=500) for _ in range(2)]
    customer = await new_customer(api, email("outage"))
    scenario.orders = BEFORE + DURING
    before = await Burst(api, customer, [order_body(products[n % 2]) for n in range(BEFORE)]).run()
    assert before.outcomes == {201: BEFORE}
    # What was consumed before the outage stays consumed: let it all go through first.
    await wait_for_sagas(cluster, before.order_ids, {"AWAITING_PAYMENT": BEFORE})

    broker = cluster.processes["broker"]
    await asyncio.to_thread(broker.stop)
    stopped = time.monotonic()
    scenario.inject(f"broker stopped for {OUTAGE_SECONDS} s")
    during = await Burst(api, customer, [order_body(products[n % 2]) for n in range(DURING)]).run()
    paid = before.order_ids[:50]
    payments = await change_orders(api, customer, paid, "paid")
    scenario.measure(placed_during_outage=dict(during.outcomes), paid_during_outage=dict(payments))
    assert during.outcomes == {201: DURING}
    assert payments == {200: len(paid)}
    await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
    waiting = await unpublished(cluster, "ORDER_DATABASE_URL")
    scenario.measure(order_events_waiting=waiting)
    assert waiting == DURING + len(paid)  # nothing could be published, nothing was dead-lettered

    await asyncio.to_thread(broker.start)
    scenario.inject(f"broker started again after {time.monotonic() - stopped:.1f} s (empty)")
    started = time.monotonic()
    await wait_for_sagas(cluster, during.order_ids, {"AWAITING_PAYMENT": DURING})
    await wait_for_sagas(cluster, paid, {"COMPLETED": len(paid)})
    scenario.measure(recovery_seconds=round(time.monotonic() - started, 1))
    try:
        await check_invariants(cluster, scenario)
    finally:
        shared_cluster.broken = True  # see the module's docstring: the next scenario gets a fresh cluster
