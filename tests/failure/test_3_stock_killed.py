"""Scenario 3: stock_svc SIGKILLed mid-saga, during a burst of orders, and started again after the burst. While
it is down, customers pay and cancel orders whose stock was reserved: the saga's commands wait in the broker
(and are sent again at their step timeout). Every reservation, confirmation and release happens exactly once."""

import pytest

from tests.cluster import eventually, new_customer
from tests.failure.support import (
    Burst,
    change_orders_while_down_then_recover,
    email,
    sagas_in,
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
    await change_orders_while_down_then_recover(
        cluster, api, admin, customer, scenario, burst, products, "stock_svc", paid, cancelled
    )
