"""Scenario 7: PostgreSQL stopped (SIGINT, its fast shutdown) and started again on the same port while orders are
being placed. Requests during the outage may fail, with a 503; nothing answered 201 may be lost, everything committed
converges (an order answered with an error may or may not exist, and converges too), and once the server is back
every service serves and consumes again without being restarted."""

import asyncio
import time
import uuid

import pytest

from tests.cluster import new_customer
from tests.failure.support import Burst, SteadyLoad, check_invariants, email, query, wait_for_sagas
from tests.system.conftest import create_product, order_body

OUTAGE_SECONDS = 3
LOAD_AFTER_SECONDS = 4


@pytest.mark.scenario(number=7, title="PostgreSQL restarted under load", fault="PostgreSQL fast shutdown 3 s")
async def test_postgres_restarted_under_load(cluster, api, admin, scenario):
    product_id = await create_product(api, admin, quantity=5000)
    customer = await new_customer(api, email("pg-restart"))
    load = SteadyLoad(api, customer, order_body(product_id), clients=10).start()
    postgres = cluster.processes["postgres"]
    try:
        await load.until_answered(150)
        await asyncio.to_thread(postgres.stop)  # SIGINT: fast shutdown; clients are disconnected
        stopped = time.monotonic()
        scenario.inject(f"PostgreSQL stopped (fast shutdown) after {load.answered} orders answered")
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(postgres.start)
        scenario.inject(f"PostgreSQL started again on port {postgres.port} after {time.monotonic() - stopped:.1f} s")
        await asyncio.sleep(LOAD_AFTER_SECONDS)
    finally:
        await load.stop()
    failed = {outcome: n for outcome, n in load.outcomes.items() if outcome != 201}
    scenario.orders = load.answered
    scenario.measure(placed=dict(load.outcomes))
    # A request the database could not serve is answered 503 (try again), never 500.
    assert all(isinstance(outcome, str) or outcome == 503 for outcome in failed), f"not a 503: {failed}"

    # Nothing answered 201 is lost, and every order in the database (answered or not) converges.
    committed = set(load.order_ids)
    rows = await query(
        cluster,
        "ORDER_DATABASE_URL",
        "SELECT id FROM orders WHERE user_id = (SELECT user_id FROM orders WHERE id = $1)",
        uuid.UUID(load.order_ids[0]),
    )
    in_database = {str(row["id"]) for row in rows}
    scenario.measure(answered_201=len(committed), orders_in_database=len(in_database))
    assert committed <= in_database, f"{len(committed - in_database)} orders answered 201 are not in the database"
    started = time.monotonic()
    await wait_for_sagas(cluster, in_database, {"AWAITING_PAYMENT": len(in_database)})
    scenario.measure(recovery_seconds=round(time.monotonic() - started, 1))

    # Every service serves again without a restart of its own.
    after = await Burst(api, customer, [order_body(product_id)] * 40, concurrency=20).run()
    scenario.measure(placed_after=dict(after.outcomes))
    assert after.outcomes == {201: 40}
    await wait_for_sagas(cluster, after.order_ids, {"AWAITING_PAYMENT": 40})
    await check_invariants(cluster, scenario)
