"""Scenario 3: stock_svc SIGKILLed mid-saga, during a burst of orders, and started again after the burst. While
it is down, customers pay and cancel orders whose stock was reserved: the saga's commands wait in the broker
(and are sent again at their step timeout). Every reservation, confirmation and release happens exactly once."""

import asyncio
import time

import pytest

from tests.cluster import eventually, new_customer
from tests.failure.support import (
    Burst,
    change_orders,
    check_invariants,
    email,
    sagas_in,
    wait_for_sagas,
)
from tests.system.conftest import create_product, order_body

ORDERS = 400
CHANGED = 30  # paid, and as many cancelled, while stock_svc is down


@pytest.mark.scenario(number=3, title="stock_svc SIGKILLed mid-saga", fault="SIGKILL stock_svc during 400 orders")
async def test_stock_service_killed_mid_saga(cluster, api, admin, scenario):
    products = [await create_product(api, admin, quantity=300) for _ in range(2)]
    customer = await new_customer(api, email("stock-crash"))
    scenario.orders = ORDERS
    burst = Burst(api, customer, [order_body(products[n % 2]) for n in range(ORDERS)], concurrency=50).start()
    await burst.until_answered(120)
    # Enough reservations made to pay and cancel some while stock_svc is down (the burst goes on meanwhile).
    reserved = await eventually(
        lambda: sagas_in(cluster, list(burst.order_ids), "AWAITING_PAYMENT"), lambda ids: len(ids) >= 2 * CHANGED
    )
    cluster.kill("stock_svc")
    scenario.inject(f"SIGKILL stock_svc after {burst.answered} orders answered")
    paid, cancelled = reserved[:CHANGED], reserved[CHANGED : 2 * CHANGED]
    payments = await change_orders(api, customer, paid, "paid")
    cancels = await change_orders(api, customer, cancelled, "cancel")
    scenario.inject(f"{CHANGED} orders paid and {CHANGED} cancelled while stock_svc is down")
    await burst.finished()
    await asyncio.sleep(2)
    await cluster.restart("stock_svc")
    restarted = time.monotonic()
    scenario.inject("stock_svc restarted")
    scenario.measure(
        placed=dict(burst.outcomes),
        paid=dict(payments),
        cancelled=dict(cancels),
        place_seconds=round(burst.seconds, 1),
        orders_per_second=burst.rate,
    )
    assert burst.outcomes == {201: ORDERS}
    assert payments == {200: CHANGED} and cancels == {204: CHANGED}

    expected = {"AWAITING_PAYMENT": ORDERS - 2 * CHANGED, "COMPLETED": CHANGED, "CANCELLED": CHANGED}
    await wait_for_sagas(cluster, burst.order_ids, expected)
    scenario.measure(recovery_seconds=round(time.monotonic() - restarted, 1))
    await check_invariants(cluster, scenario)
    items = [(await api.get(f"/inventory/{product_id}", headers=admin)).json() for product_id in products]
    assert sum(item["reserved_quantity"] for item in items) == ORDERS - 2 * CHANGED
    assert sum(item["available_quantity"] for item in items) == 600 - ORDERS + CHANGED
