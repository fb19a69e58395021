"""Two of every process (STACK_SCALE=2): two instances of each service and of the relay, named `saga.1`, `saga.2`,
`outbox_relay.1`, ..., behind the gateway's round robin, sharing their databases, outboxes (SKIP LOCKED) and consumer
groups (the topics' 4 partitions split between the instances of a service).

One scaled cluster serves the whole module (a start takes 20-40 s); the tests run in file order and build on
each other's cluster: the seed guide; the order race; one instance each of saga, stock_svc and the relay SIGKILLed
mid-burst (checked with the survivors alone, then started again); payment deadlines with two timers, for which both
saga instances are restarted with a 2 s PAYMENT_TIMEOUT (the earlier tests' orders keep the deadline they were given,
15 minutes, so nothing of theirs expires). The invariants are global: the kill test and the deadline test check
everything the cluster holds by then.
"""

import asyncio
import shutil
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from common.messages import RELEASE_STOCK, SAGA_EXPIRED
from common.topics import PARTITIONS, STOCK_COMMANDS
from demo.walkthrough import Walkthrough
from tests.cluster import Cluster, eventually, new_customer
from tests.failure.report import ScenarioReport
from tests.failure.support import (
    Burst,
    cancel_leftover_load,
    change_orders,
    check_invariants,
    email,
    messages_per_key,
    query,
    restart_with,
    sagas_in,
    wait_for_sagas,
)
from tests.system.conftest import create_product, order_body

SERVICE_ENV = {"SAGA_TIMER_INTERVAL": "0.1"}


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    running = Cluster(service_env=SERVICE_ENV, scale="2")
    try:
        await running.start()
        yield running
    finally:
        logs = tmp_path_factory.mktemp("two-of-everything-logs")
        shutil.copytree(running.directory / "logs", logs, dirs_exist_ok=True)
        print(f"\n  (the scaled cluster's logs: {logs})")
        running.stop()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=cluster.api, timeout=60, limits=limits) as client:
        yield client


@pytest.fixture(autouse=True)
async def no_load_left_behind() -> AsyncIterator[None]:
    """A test that failed half-way may leave a burst running: stop it before the next one."""
    yield
    await cancel_leftover_load()


def report(request: pytest.FixtureRequest, title: str) -> ScenarioReport:
    """A scenario's printed record, as the failure scenarios print theirs (not added to their report file)."""
    print(f"\n== {title} ==")
    return ScenarioReport(0, title, request.node.nodeid)


async def test_two_of_every_process_run(cluster: Cluster):
    for package in ("user_svc", "catalog_svc", "stock_svc", "order_svc", "saga", "outbox_relay"):
        assert cluster.instances(package) == [f"{package}.1", f"{package}.2"]
        assert all(cluster.processes[name].process.poll() is None for name in cluster.instances(package))
    assert cluster.instances("gateway") == ["gateway"]


async def test_the_seed_guide_passes(cluster: Cluster):
    def walk() -> None:
        with httpx.Client(base_url=cluster.api, timeout=30) as client:
            Walkthrough(client, "admin@example.com", "Admin12345", say=lambda _: None, settle_timeout=30).run()

    await asyncio.to_thread(walk)


async def test_exactly_the_stock_is_reserved(cluster: Cluster, api: httpx.AsyncClient, admin):
    """100 concurrent one-unit orders for 10 units, placed through both order_svc instances and reserved by both
    saga and stock_svc instances: exactly 10 reserve, 90 are rejected, nothing is oversold.

    The relays are paused while the orders are placed (`Cluster.relays_paused`): all 100 order.placed events then
    reach the two saga instances together, and their 100 reservations race in the two stock_svc instances."""
    product_id = await create_product(api, admin, quantity=10)
    customer = await new_customer(api, email("racer"))
    with cluster.relays_paused():
        placed = await asyncio.gather(
            *(api.post("/orders/", json=order_body(product_id), headers=customer) for _ in range(100))
        )
    assert [response.status_code for response in placed] == [201] * 100
    order_ids = [response.json()["_id"] for response in placed]

    states = await wait_for_sagas(cluster, order_ids, {"AWAITING_PAYMENT": 10, "REJECTED": 90}, timeout=120)
    print(f"\n  sagas {dict(states)}")
    item = (await api.get(f"/inventory/{product_id}", headers=admin)).json()
    assert (item["available_quantity"], item["reserved_quantity"]) == (0, 10)
    wanted = [uuid.UUID(order_id) for order_id in order_ids]
    statuses = await eventually(
        lambda: _order_statuses(cluster, wanted), lambda counts: counts == {"pending": 10, "rejected": 90}
    )
    assert statuses == {"pending": 10, "rejected": 90}
    [held] = await query(
        cluster,
        "STOCK_DATABASE_URL",
        "SELECT count(*) AS n FROM reservations r JOIN inventory_items i ON i.id = r.item_id"
        " WHERE i.product_id = $1 AND r.status = 'held'",
        product_id,
    )
    assert held["n"] == 10


ORDERS = 300
CHANGED = 20  # paid, and as many cancelled, while the three instances are down
KILLED = ("saga", "stock_svc", "outbox_relay")


async def test_survivors_take_over_from_killed_instances(cluster: Cluster, api: httpx.AsyncClient, admin, request):
    """saga.1, stock_svc.1 and outbox_relay.1 SIGKILLed one after the other during a burst of 300 orders; orders are
    paid and cancelled while they are down. The survivors take over: saga.2 and stock_svc.2 consume every partition
    of their topics, outbox_relay.2 drains every outbox, and every invariant of tests/failure/invariants.py is
    checked with the killed instances STILL DEAD. They are started again at the end (for the next test)."""
    scenario = report(request, "saga.1, stock_svc.1 and outbox_relay.1 SIGKILLed mid-burst")
    victims = [cluster.instances(package)[0] for package in KILLED]
    survivors = [cluster.instances(package)[1] for package in KILLED]
    products = [await create_product(api, admin, quantity=300) for _ in range(2)]
    customer = await new_customer(api, email("scaled-crash"))
    scenario.orders = ORDERS
    burst = Burst(api, customer, [order_body(products[n % 2]) for n in range(ORDERS)], concurrency=50).start()
    await burst.until_answered(60)
    # Reservations to pay and cancel while the instances are down (the burst goes on meanwhile).
    reserved = await eventually(
        lambda: sagas_in(cluster, list(burst.order_ids), "AWAITING_PAYMENT"), lambda ids: len(ids) >= 2 * CHANGED
    )
    before = {name: await _partitions_by_topic(cluster, name) for name in survivors[:2]}
    for victim, answered in zip(victims, (100, 150, 200), strict=True):
        await burst.until_answered(answered)
        cluster.kill(victim)
        scenario.inject(f"SIGKILL {victim} after {burst.answered} orders answered")
    killed_at = time.monotonic()

    paid, cancelled = reserved[:CHANGED], reserved[CHANGED : 2 * CHANGED]
    payments = await change_orders(api, customer, paid, "paid")
    cancels = await change_orders(api, customer, cancelled, "cancel")
    scenario.inject(f"{len(paid)} orders paid and {len(cancelled)} cancelled while they are down")
    await burst.finished()
    scenario.measure(
        placed=dict(burst.outcomes),
        paid=dict(payments),
        cancelled=dict(cancels),
        place_seconds=round(burst.seconds, 1),
        orders_per_second=burst.rate,
    )
    assert burst.outcomes == {201: ORDERS}
    assert payments == {200: CHANGED} and cancels == {204: CHANGED}

    held = ORDERS - 2 * CHANGED
    await wait_for_sagas(
        cluster, burst.order_ids, {"AWAITING_PAYMENT": held, "COMPLETED": CHANGED, "CANCELLED": CHANGED}
    )
    scenario.measure(converged_seconds_after_the_last_kill=round(time.monotonic() - killed_at, 1))
    assert all(cluster.processes[victim].process.poll() is not None for victim in victims)  # still dead
    await check_invariants(cluster, scenario)
    items = [(await api.get(f"/inventory/{product_id}", headers=admin)).json() for product_id in products]
    assert sum(item["reserved_quantity"] for item in items) == held
    assert sum(item["available_quantity"] for item in items) == 2 * 300 - ORDERS + CHANGED
    reservations = await query(
        cluster,
        "STOCK_DATABASE_URL",
        "SELECT r.order_id, r.status FROM reservations r JOIN inventory_items i ON i.id = r.item_id"
        " WHERE i.product_id = ANY($1::text[])",
        products,
    )
    assert sorted(r["order_id"] for r in reservations) == sorted(burst.order_ids)  # one each, none twice
    assert Counter(r["status"] for r in reservations) == {"held": held, "confirmed": CHANGED, "released": CHANGED}

    # The surviving consumers applied events of every partition (the lag gauge is set per partition applied).
    saga, stock, relay = survivors
    for name, topics in ((saga, ("order-events", "stock-replies")), (stock, (STOCK_COMMANDS,))):
        after = await _partitions_by_topic(cluster, name)
        scenario.measure(
            **{f"{name}_partitions": {t: f"{before[name].get(t, [])} -> {after.get(t, [])}" for t in topics}}
        )
        assert all(after.get(topic) == list(range(PARTITIONS)) for topic in topics), after
    published = await _metric(cluster, relay, "relay_published_total")
    scenario.measure(**{f"{relay}_published": int(sum(value for _, value in published))})
    assert published, f"{relay} published nothing"

    await asyncio.gather(*(cluster.restart(victim) for victim in victims))
    scenario.inject(f"{', '.join(victims)} started again")


EXPIRING = 20


async def test_payment_deadlines_claimed_once_by_two_timers(cluster: Cluster, api: httpx.AsyncClient, admin, request):
    """Both saga instances restarted with PAYMENT_TIMEOUT=2 (their timers look every 0.1 s): 20 unpaid orders all
    end EXPIRED, each deadline claimed by one instance only (one release step, one stock.release command in the
    outbox and on the topic, one release applied by stock), and the stock is released in full."""
    scenario = report(request, "payment deadlines with two saga timers")
    sagas = cluster.instances("saga")
    await asyncio.gather(*(restart_with(cluster, name, PAYMENT_TIMEOUT="2") for name in sagas))
    scenario.inject(f"{' and '.join(sagas)} restarted with PAYMENT_TIMEOUT=2")
    product_id = await create_product(api, admin, quantity=2 * EXPIRING)
    customer = await new_customer(api, email("slow-payers"))
    placed = await asyncio.gather(
        *(api.post("/orders/", json=order_body(product_id, quantity=2), headers=customer) for _ in range(EXPIRING))
    )
    assert [response.status_code for response in placed] == [201] * EXPIRING
    order_ids = [response.json()["_id"] for response in placed]
    wanted = [uuid.UUID(order_id) for order_id in order_ids]
    await wait_for_sagas(cluster, order_ids, {"EXPIRED": EXPIRING}, timeout=60)

    steps = await query(
        cluster,
        "SAGA_DATABASE_URL",
        "SELECT saga_id, name, state FROM saga_steps WHERE saga_id = ANY($1::uuid[]) ORDER BY id",
        wanted,
    )
    per_saga: dict[str, list[tuple[str, str]]] = {}
    for step in steps:
        per_saga.setdefault(str(step["saga_id"]), []).append((step["name"], step["state"]))
    expected_steps = [("reserve", "succeeded"), ("await_payment", "abandoned"), ("release", "succeeded")]
    assert per_saga == dict.fromkeys(order_ids, expected_steps)

    sent = await query(
        cluster,
        "SAGA_DATABASE_URL",
        "SELECT aggregate_id, event_type, count(*) AS n FROM outbox"
        " WHERE aggregate_id = ANY($1::text[]) AND event_type = ANY($2::text[]) GROUP BY 1, 2",
        order_ids,
        [RELEASE_STOCK, SAGA_EXPIRED],
    )
    sent_once = {(order_id, kind): 1 for order_id in order_ids for kind in (RELEASE_STOCK, SAGA_EXPIRED)}
    assert {(row["aggregate_id"], row["event_type"]): row["n"] for row in sent} == sent_once
    on_topic = await messages_per_key(cluster.stack.bootstrap_servers, STOCK_COMMANDS, set(order_ids))
    assert {key: n for key, n in on_topic.items() if key[1] == RELEASE_STOCK} == {
        (order_id, RELEASE_STOCK): 1 for order_id in order_ids
    }
    applied = await query(
        cluster,
        "STOCK_DATABASE_URL",
        "SELECT reference, count(*) AS n FROM stock_history WHERE type = 'released' AND reference = ANY($1::text[])"
        " GROUP BY 1",
        order_ids,
    )
    assert {row["reference"]: row["n"] for row in applied} == dict.fromkeys(order_ids, 1)
    item = (await api.get(f"/inventory/{product_id}", headers=admin)).json()
    assert (item["available_quantity"], item["reserved_quantity"]) == (2 * EXPIRING, 0)
    statuses = await eventually(
        lambda: _order_statuses(cluster, wanted), lambda counts: counts == {"cancelled": EXPIRING}
    )
    assert statuses == {"cancelled": EXPIRING}

    # Each deadline counted by the one instance that claimed it (both started afresh: no earlier deadline counted).
    claimed = {name: await _payment_deadlines(cluster, name) for name in sagas}
    scenario.measure(payment_deadlines_claimed=claimed)
    assert sum(claimed.values()) == EXPIRING
    await check_invariants(cluster, scenario)


async def _order_statuses(cluster: Cluster, wanted: list[uuid.UUID]) -> Counter:
    rows = await query(cluster, "ORDER_DATABASE_URL", "SELECT status FROM orders WHERE id = ANY($1::uuid[])", wanted)
    return Counter(row["status"] for row in rows)


async def _metric(cluster: Cluster, name: str, sample: str) -> list[tuple[dict[str, str], float]]:
    """A process's samples of one metric: (labels, value) each."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{cluster.parts[name].address}/metrics")).text
    return [
        (found.labels, found.value)
        for family in text_string_to_metric_families(text)
        for found in family.samples
        if found.name == sample
    ]


async def _payment_deadlines(cluster: Cluster, name: str) -> int:
    """The payment deadlines a saga instance has moved (claimed) since it started."""
    samples = await _metric(cluster, name, "saga_deadlines_total")
    return int(sum(value for labels, value in samples if labels == {"kind": "payment"}))


async def _partitions_by_topic(cluster: Cluster, name: str) -> dict[str, list[int]]:
    """The partitions of each topic that the process's consumer has applied a batch of (its lag gauges)."""
    partitions: dict[str, set[int]] = {}
    for labels, _ in await _metric(cluster, name, "consumer_lag_messages"):
        partitions.setdefault(labels["topic"], set()).add(int(labels["partition"]))
    return {topic: sorted(found) for topic, found in partitions.items()}
