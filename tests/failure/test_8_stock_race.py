"""Scenario 8: 500 concurrent orders race for 10 units; exactly 10 reserve, 490 are rejected, nothing oversold."""

import pytest

from tests.cluster import new_customer
from tests.failure.support import Burst, check_invariants, email, order_statuses, wait_for_sagas
from tests.system.conftest import create_product, order_body

ORDERS, UNITS = 500, 10


@pytest.mark.scenario(number=8, title="500 orders race for 10 units", fault="500 concurrent orders, 10 units")
async def test_500_orders_race_for_10_units(cluster, api, admin, scenario):
    product_id = await create_product(api, admin, quantity=UNITS)
    customer = await new_customer(api, email("racer"))
    scenario.orders = ORDERS
    scenario.inject(f"{ORDERS} one-unit orders for {UNITS} units, 100 requests in flight")
    with cluster.relays_paused():  # all 500 reach the saga and race for the stock (not refused by the stock view)
        burst = await Burst(api, customer, [order_body(product_id)] * ORDERS, concurrency=100).run()
    scenario.measure(placed=dict(burst.outcomes), place_seconds=round(burst.seconds, 1), orders_per_second=burst.rate)
    assert burst.outcomes == {201: ORDERS}

    await wait_for_sagas(cluster, burst.order_ids, {"AWAITING_PAYMENT": UNITS, "REJECTED": ORDERS - UNITS})
    await check_invariants(cluster, scenario)
    assert await order_statuses(cluster, burst.order_ids) == {"pending": UNITS, "rejected": ORDERS - UNITS}
    item = (await api.get(f"/inventory/{product_id}", headers=admin)).json()
    assert (item["available_quantity"], item["reserved_quantity"]) == (0, UNITS)
