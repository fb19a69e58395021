"""Scenario 9: 400 orders placed in a burst, the broker SIGKILLed as the last ones are answered, then the whole
system stopped (as Ctrl-C stops `make run`) and started again on the same data. The broker keeps on disk what it
acknowledged (the relay marks an event published only once every in-sync replica has it), so every accepted order
gets its saga and reaches its reservation without anyone replaying anything, and the stock adds up."""

import asyncio
import time

import pytest

from tests.cluster import new_customer
from tests.failure.support import Burst, check_invariants, email, wait_for_sagas
from tests.system.conftest import create_product, order_body

ORDERS = 400


@pytest.mark.scenario(
    number=9, title="broker SIGKILLed, everything restarted", fault="SIGKILL broker under load, restart the stack"
)
async def test_broker_killed_then_the_stack_restarted(cluster, api, admin, scenario):
    products = [await create_product(api, admin, quantity=300) for _ in range(2)]
    customer = await new_customer(api, email("restart"))
    scenario.orders = ORDERS
    burst = Burst(api, customer, [order_body(products[n % 2]) for n in range(ORDERS)]).start()
    await burst.until_answered(ORDERS - 20)
    cluster.kill("broker")
    scenario.inject(f"broker SIGKILLed after {burst.answered} of {ORDERS} orders answered")
    await burst.finished()
    assert burst.outcomes == {201: ORDERS}

    await asyncio.to_thread(cluster.halt)
    scenario.inject("every process stopped (SIGTERM), the data kept")
    await cluster.start()
    started = time.monotonic()
    scenario.inject("the whole system started again on the same data")
    await wait_for_sagas(cluster, burst.order_ids, {"AWAITING_PAYMENT": ORDERS})
    scenario.measure(recovery_seconds=round(time.monotonic() - started, 1))
    await check_invariants(cluster, scenario)
