"""What the failure scenarios do to the system: bursts of orders with bounded concurrency, payments and
cancellations, looks into the databases, the relay replaced by a faulty one, and the invariant check."""

import asyncio
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from common.database import asyncpg_dsn
from common.topics import PARTITIONS
from stack.infra import ServerProcess
from tests.cluster import Cluster, eventually
from tests.failure.invariants import settle
from tests.failure.report import ScenarioReport

# Load still running in the background (a scenario that failed half-way): cancelled after each test.
RUNNING: set[asyncio.Task] = set()


async def cancel_leftover_load() -> None:
    """Stop the bursts a test that failed half-way left running, before the next test."""
    leftovers = list(RUNNING)
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)


def email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


class Burst:
    """Orders placed concurrently, at most `concurrency` requests in flight. Every answer is kept: 201s give the
    committed orders, anything else (a status or a transport error) is counted."""

    def __init__(self, api: httpx.AsyncClient, headers: dict[str, str], bodies: list[dict], concurrency: int = 50):
        self.api, self.headers, self.bodies, self.concurrency = api, headers, bodies, concurrency
        self.outcomes: Counter = Counter()  # 201, 503, "ReadTimeout", ...
        self.order_ids: list[str] = []
        self.answered = 0
        self.seconds = 0.0
        self._task: asyncio.Task | None = None

    async def run(self) -> "Burst":
        started = time.monotonic()
        slots = asyncio.Semaphore(self.concurrency)

        async def place(body: dict) -> None:
            async with slots:
                try:
                    response = await self.api.post("/orders/", json=body, headers=self.headers)
                except httpx.TransportError as error:
                    self.outcomes[type(error).__name__] += 1
                else:
                    self.outcomes[response.status_code] += 1
                    if response.status_code == 201:
                        self.order_ids.append(response.json()["_id"])
                self.answered += 1

        await asyncio.gather(*(place(body) for body in self.bodies))
        self.seconds = time.monotonic() - started
        return self

    def start(self) -> "Burst":
        self._task = asyncio.create_task(self.run(), name="burst")
        RUNNING.add(self._task)
        self._task.add_done_callback(RUNNING.discard)
        return self

    async def until_answered(self, count: int, timeout: float = 120) -> None:
        """Wait until `count` orders were answered (the burst keeps going)."""
        deadline = time.monotonic() + timeout
        while self.answered < count:
            assert self._task is not None
            if self._task.done():
                self._task.result()
                return
            assert time.monotonic() < deadline, f"only {self.answered} of {count} orders answered in {timeout} s"
            await asyncio.sleep(0.02)

    async def finished(self, timeout: float = 300) -> "Burst":
        assert self._task is not None
        await asyncio.wait_for(asyncio.shield(self._task), timeout)
        return self

    @property
    def rate(self) -> float:
        return round(len(self.bodies) / self.seconds, 1) if self.seconds else 0.0


class SteadyLoad:
    """Orders placed back to back by `clients` concurrent clients until stopped (a failed request is followed
    by a short pause, as a polite client would). Answers are kept as in `Burst`."""

    def __init__(self, api: httpx.AsyncClient, headers: dict[str, str], body: dict, clients: int = 10):
        self.api, self.headers, self.body, self.clients = api, headers, body, clients
        self.outcomes: Counter = Counter()
        self.order_ids: list[str] = []
        self.answered = 0
        self._running = True
        self._tasks: list[asyncio.Task] = []

    def start(self) -> "SteadyLoad":
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self.clients)]
        for task in self._tasks:
            RUNNING.add(task)
            task.add_done_callback(RUNNING.discard)
        return self

    async def _client(self) -> None:
        while self._running:
            try:
                response = await self.api.post("/orders/", json=self.body, headers=self.headers)
            except httpx.TransportError as error:
                self.outcomes[type(error).__name__] += 1
                await asyncio.sleep(0.05)
            else:
                self.outcomes[response.status_code] += 1
                if response.status_code == 201:
                    self.order_ids.append(response.json()["_id"])
                else:
                    await asyncio.sleep(0.05)
            self.answered += 1

    async def until_answered(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.answered < count:
            assert time.monotonic() < deadline, f"only {self.answered} of {count} orders answered in {timeout} s"
            await asyncio.sleep(0.02)

    async def stop(self) -> "SteadyLoad":
        self._running = False
        await asyncio.gather(*self._tasks)
        return self


async def change_orders(
    api: httpx.AsyncClient, headers: dict[str, str], order_ids: Iterable[str], action: str, concurrency: int = 20
) -> Counter:
    """Pay (`paid`) or cancel (`cancel`) orders; the answers' status codes counted."""
    slots = asyncio.Semaphore(concurrency)
    outcomes: Counter = Counter()

    async def change(order_id: str) -> None:
        async with slots:
            if action == "cancel":
                response = await api.delete(f"/orders/{order_id}", headers=headers)
            else:
                response = await api.put(f"/orders/{order_id}/status", json={"status": action}, headers=headers)
            outcomes[response.status_code] += 1

    await asyncio.gather(*(change(order_id) for order_id in order_ids))
    return outcomes


async def query(cluster: Cluster, variable: str, sql: str, *args):
    connection = await asyncpg.connect(asyncpg_dsn(cluster.database_url(variable)), timeout=10)
    try:
        return await connection.fetch(sql, *args)
    finally:
        await connection.close()


async def saga_states(cluster: Cluster, order_ids: Iterable[str]) -> Counter:
    """How many of these orders' sagas are in each state ("missing" for orders without one yet)."""
    wanted = [uuid.UUID(order_id) for order_id in order_ids]
    rows = await query(
        cluster, "SAGA_DATABASE_URL", "SELECT order_id, state FROM sagas WHERE order_id = ANY($1::uuid[])", wanted
    )
    states = Counter(row["state"] for row in rows)
    if len(rows) < len(wanted):
        states["missing"] = len(wanted) - len(rows)
    return states


async def sagas_in(cluster: Cluster, order_ids: Iterable[str], state: str) -> list[str]:
    wanted = [uuid.UUID(order_id) for order_id in order_ids]
    rows = await query(
        cluster,
        "SAGA_DATABASE_URL",
        "SELECT order_id FROM sagas WHERE order_id = ANY($1::uuid[]) AND state = $2",
        wanted,
        state,
    )
    return [str(row["order_id"]) for row in rows]


async def order_statuses(cluster: Cluster, order_ids: Iterable[str]) -> Counter:
    wanted = [uuid.UUID(order_id) for order_id in order_ids]
    rows = await query(cluster, "ORDER_DATABASE_URL", "SELECT status FROM orders WHERE id = ANY($1::uuid[])", wanted)
    return Counter(row["status"] for row in rows)


async def wait_for_sagas(cluster: Cluster, order_ids: Iterable[str], expected: dict[str, int], timeout: float = 180):
    """Wait until these orders' sagas are in exactly the `expected` states; returns the states."""
    order_ids = list(order_ids)
    return await eventually(
        lambda: saga_states(cluster, order_ids), lambda states: states == Counter(expected), timeout, interval=0.5
    )


async def unpublished(cluster: Cluster, variable: str) -> int:
    [row] = await query(cluster, variable, "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
    return row["n"]


async def restart_with(cluster: Cluster, name: str, **env: str) -> None:
    """Stop `name` (SIGTERM) and start it again with `env` added to its environment."""
    process = cluster.processes[name]
    await asyncio.to_thread(process.stop)
    process.env = {**(process.env or {}), **env}
    await cluster.restart(name)


@asynccontextmanager
async def faulty_relay(cluster: Cluster, **faults: str) -> AsyncIterator[ServerProcess]:
    """For the block, the relay stopped and its process set to run tests/faulty_relay.py with `faults` (its FAULT_*
    variables), to be started by the block; then the relay itself started again."""
    relay = cluster.processes["outbox_relay"]
    command, env = relay.command, relay.env
    await asyncio.to_thread(relay.stop)
    relay.command, relay.env = [sys.executable, "-m", "tests.faulty_relay"], {**(env or os.environ), **faults}
    try:
        yield relay
    finally:
        await asyncio.to_thread(relay.stop)
        relay.command, relay.env = command, env
        await cluster.restart("outbox_relay")


async def check_invariants(cluster: Cluster, scenario: ScenarioReport, timeout: float = 180) -> None:
    """Settle, print and record every invariant; fail the scenario if one does not hold."""
    invariants, seconds = await settle(cluster, timeout)
    scenario.record_invariants(invariants, seconds)
    broken = [invariant.line() for invariant in invariants if not invariant.held]
    assert not broken, "invariants broken after settling:\n" + "\n".join(broken)


async def messages_per_key(bootstrap_servers: str, topic: str, keys: set[str]) -> Counter:
    """How many messages of `topic` carry each (key, event type), for the keys asked about: the whole topic read
    from the start, without a consumer group, up to its end when asked."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    counts: Counter = Counter()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]  # as ensure_topics creates them
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + 60
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    key = (record.key or b"").decode()
                    if key in keys:
                        headers = dict(record.headers or ())
                        counts[(key, headers.get("event_type", b"").decode())] += 1
    finally:
        await consumer.stop()
    return counts


async def change_orders_while_down_then_recover(
    cluster: Cluster,
    api: httpx.AsyncClient,
    admin: dict[str, str],
    customer: dict[str, str],
    scenario: ScenarioReport,
    burst: "Burst",
    products: list[str],
    down: str,
    paid: list[str],
    cancelled: list[str],
) -> None:
    """The second half of a crash scenario (`down` was SIGKILLed mid-burst): pay and cancel orders while it is down,
    let the burst finish, restart it, then check that every saga ends where its order says and the stock adds up
    (the products started with 300 units each)."""
    payments = await change_orders(api, customer, paid, "paid")
    cancels = await change_orders(api, customer, cancelled, "cancel")
    scenario.inject(f"{len(paid)} orders paid and {len(cancelled)} cancelled while {down} is down")
    await burst.finished()
    await asyncio.sleep(2)
    await cluster.restart(down)
    restarted = time.monotonic()
    scenario.inject(f"{down} restarted")
    scenario.measure(
        placed=dict(burst.outcomes),
        paid=dict(payments),
        cancelled=dict(cancels),
        place_seconds=round(burst.seconds, 1),
        orders_per_second=burst.rate,
    )
    orders = scenario.orders
    assert burst.outcomes == {201: scenario.orders}
    assert payments == {200: len(paid)} and cancels == {204: len(cancelled)}

    held = orders - len(paid) - len(cancelled)
    expected = {"AWAITING_PAYMENT": held, "COMPLETED": len(paid), "CANCELLED": len(cancelled)}
    await wait_for_sagas(cluster, burst.order_ids, expected)
    scenario.measure(recovery_seconds=round(time.monotonic() - restarted, 1))
    await check_invariants(cluster, scenario)
    items = [(await api.get(f"/inventory/{product_id}", headers=admin)).json() for product_id in products]
    assert sum(item["reserved_quantity"] for item in items) == held
    assert sum(item["available_quantity"] for item in items) == 300 * len(products) - orders + len(cancelled)
