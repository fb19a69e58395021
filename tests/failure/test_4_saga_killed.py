"""Scenario 4: the saga orchestrator SIGKILLed mid-burst and started again after it. While it is down, orders keep
being placed, some are paid and some cancelled, before or after their saga even began. Every saga ends where its
order says, and nothing is reserved twice. (tests/system/test_saga_crash.py covers a small fixed shape.)"""

import pytest

from tests.cluster import new_customer
from tests.failure.support import Burst, change_orders_while_down_then_recover, email
from tests.system.conftest import create_product, order_body

ORDERS = 400
CHANGED = 30  # paid, and as many cancelled, while the orchestrator is down


@pytest.mark.scenario(number=4, title="saga SIGKILLed mid-saga", fault="SIGKILL saga during 400 orders")
async def test_orchestrator_killed_mid_burst(cluster, api, admin, scenario):
    products = [await create_product(api, admin, quantity=300) for _ in range(2)]
    customer = await new_customer(api, email("saga-crash"))
    scenario.orders = ORDERS
    burst = Burst(api, customer, [order_body(products[n % 2]) for n in range(ORDERS)], concurrency=50).start()
    await burst.until_answered(120)
    cluster.kill("saga")
    scenario.inject(f"SIGKILL saga after {burst.answered} orders answered")

    # Orders placed around the kill: some have a saga (reserved or reserving), the latest have none yet.
    await burst.until_answered(200)
    placed = list(burst.order_ids)
    paid, cancelled = placed[-CHANGED:], placed[-2 * CHANGED : -CHANGED]
    await change_orders_while_down_then_recover(
        cluster, api, admin, customer, scenario, burst, products, "saga", paid, cancelled
    )
