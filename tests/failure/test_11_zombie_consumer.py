"""Scenario 11: a zombie consumer. Two stock_svc instances share the saga's commands; one is frozen (SIGSTOP) in the
middle of a burst for longer than the consumer session timeout (10 s), so the group hands its partitions to the
other, then it is thawed (SIGCONT) holding records it fetched before and offsets it can no longer commit. Nothing
applies twice (the inbox and the order's advisory lock), nothing is lost, and the thawed instance rejoins."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.cluster import Cluster, eventually, new_customer
from tests.failure.conftest import SERVICE_ENV
from tests.failure.support import Burst, change_orders, check_invariants, email, sagas_in, wait_for_sagas
from tests.system.conftest import create_product, order_body

ORDERS = 400
FROZEN_SECONDS = 15  # past the consumer session timeout


@pytest.fixture(scope="module")
async def two_stock_services() -> AsyncIterator[Cluster]:
    cluster = Cluster(service_env=SERVICE_ENV, scale="stock_svc=2")
    await cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster(two_stock_services: Cluster) -> Cluster:
    return two_stock_services


async def members_of(bootstrap_servers: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        (description,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    return len(description.to_object()["groups"][0]["members"])


@pytest.mark.scenario(number=11, title="zombie consumer", fault="SIGSTOP stock_svc.1 15 s (past its session)")
async def test_a_frozen_consumer_thawed_after_its_partitions_moved_applies_nothing_twice(cluster, api, admin, scenario):
    servers = cluster.stack.bootstrap_servers
    await eventually(lambda: members_of(servers, "stock_svc"), lambda members: members == 2)
    products = [await create_product(api, admin, quantity=500) for _ in range(2)]
    customer = await new_customer(api, email("zombie"))
    scenario.orders = ORDERS
    burst = Burst(api, customer, [order_body(products[n % 2]) for n in range(ORDERS)], concurrency=20).start()
    await burst.until_answered(100)
    cluster.pause("stock_svc.1")
    scenario.inject(f"SIGSTOP stock_svc.1 after {burst.answered} orders answered")
    try:
        # The group notices the silent member and gives all its partitions to stock_svc.2.
        await eventually(lambda: members_of(servers, "stock_svc"), lambda members: members == 1, timeout=30)
        scenario.inject("the group rebalanced to stock_svc.2 alone")
        await asyncio.sleep(max(0.0, FROZEN_SECONDS - 10))
    finally:
        cluster.resume("stock_svc.1")
    scenario.inject(f"SIGCONT stock_svc.1 after about {FROZEN_SECONDS} s")
    await burst.finished()
    await eventually(lambda: members_of(servers, "stock_svc"), lambda members: members == 2, timeout=60)
    scenario.inject("stock_svc.1 rejoined the group")

    # The orders placed during the second rebalance may still be reserving: pay and cancel among the reserved.
    reserved = await eventually(
        lambda: sagas_in(cluster, burst.order_ids, "AWAITING_PAYMENT"), lambda reserved: len(reserved) >= 100
    )
    paid, cancelled = reserved[:50], reserved[50:100]
    scenario.measure(placed=dict(burst.outcomes), paid=dict(await change_orders(api, customer, paid, "paid")))
    scenario.measure(cancelled=dict(await change_orders(api, customer, cancelled, "cancel")))
    committed = len(burst.order_ids)
    expected = {"COMPLETED": len(paid), "CANCELLED": len(cancelled), "AWAITING_PAYMENT": committed - 100}
    await wait_for_sagas(cluster, burst.order_ids, expected)
    await check_invariants(cluster, scenario)
