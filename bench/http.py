"""The whole system under a native load generator (wrk), with the cost of an order per process, in this order:

- first event: right after the stack reports ready, the first product created until its inventory exists;
- idle: CPU of every process of the stack at rest;
- gateway: the same small GET (the JWKS document) straight to user_svc and through the gateway (Caddy): the ratio;
- saga latency: wrk sending orders at fixed arrival rates (open loop): POST latency and order commit to
  AWAITING_PAYMENT (p50/p99, plotted);
- orders: wrk placing orders through the gateway for a while; end to end = orders accepted AND their sagas in
  AWAITING_PAYMENT, over the whole time until that backlog is drained; CPU ms per order for every process (from
  /proc) and their sum; then SQL statements per order per database in a shorter second phase (PostgreSQL's
  statement log on for it alone: logging costs PostgreSQL CPU);
- the highest open-loop rate once more, after the closed loop (bench.growth measures a long run at one rate).

    python -m bench.http [--seconds 10] [--scale 2]

`--scale` runs the stack as STACK_SCALE does (2: two of every service and relay; the gateway balances them; the
direct figure of the gateway ratio is one user_svc instance; no open-loop phases). Needs `wrk` (Debian:
`apt-get install wrk`). Results: bench/results/http.json and saga-latency.png, or http-scale-<scale>.json.
"""

import argparse
import asyncio
import json
import re
import shutil
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from bench.environment import RESULTS, machine, percentile, run
from bench.processes import cpu_between, sample
from bench.system import Bench
from bench.wrk import RATES, open_loop_script, order_script, wrk, wrk_open_loop
from common.database import asyncpg_dsn
from tests.cluster import ADMIN, Cluster, eventually, sign_in
from tests.failure.support import query

AFTER_CLOSED_LOOP_RATE = RATES[-1]


class HttpBench:
    def __init__(self, cluster: Cluster, bench: Bench, seconds: float) -> None:
        self.cluster, self.bench, self.seconds = cluster, bench, seconds
        self.roots = {name: process.process.pid for name, process in cluster.processes.items()}

    def gateway_ratio(self) -> dict:
        path = "/api/v1/.well-known/jwks.json"
        direct = wrk(self.cluster.parts[self.cluster.instances("user_svc")[0]].address + path, self.seconds, 16)
        through = wrk(self.cluster.api.removesuffix("/api/v1") + path, self.seconds, 16)
        ratio = through["requests_per_second"] / direct["requests_per_second"]
        return {"request": f"GET {path}", "direct": direct, "through_gateway": through, "ratio": round(ratio, 3)}

    def idle(self, seconds: float = 15) -> dict:
        before = sample(self.roots)
        time.sleep(seconds)
        after = sample(self.roots)
        used = cpu_between(before, after)
        percent = {name: round(cpu / seconds * 100, 2) for name, cpu in used.items()}
        resident = {name: round(size / 2**20) for name, size in after.resident_bytes.items()}
        return {
            "percent_of_one_core": percent,
            "total_percent_of_one_core": round(sum(percent.values()), 2),
            "resident_mib_pss": resident,
            "total_resident_mib_pss": sum(resident.values()),
        }

    async def orders(self, connections: int = 32) -> dict:
        """Orders through the gateway twice: a measured phase (rate, latency, CPU) with PostgreSQL as it runs, then
        a shorter one with its statement log on, only to count statements (logging each one costs PostgreSQL CPU
        that must not count against an order)."""
        # The saga database's connection also switches the statement log on and off (a server-wide setting).
        sagas = await asyncpg.connect(asyncpg_dsn(self.cluster.database_url("SAGA_DATABASE_URL")))
        try:
            before = sample(self.roots)
            posted, accepted, elapsed = await self._place_until_reserved(sagas, self.seconds, connections)
            after = sample(self.roots)
            statements, counted = await self._count_statements(sagas, connections)
        finally:
            await sagas.close()
        cpu_ms = {name: round(cpu * 1000 / accepted, 2) for name, cpu in cpu_between(before, after).items()}
        return {
            "post": posted,
            "orders_accepted": accepted,
            "end_to_end_orders_per_second": round(accepted / elapsed, 1),
            "seconds_until_all_awaiting_payment": round(elapsed, 2),
            "cpu_ms_per_order": cpu_ms,
            "cpu_ms_per_order_total": round(sum(cpu_ms.values()), 2),
            "sql_statements_per_order": {db: round(n / counted, 1) for db, n in statements.items()},
            "sql_statements_per_order_total": round(sum(statements.values()) / counted, 1),
            "orders_in_statement_phase": counted,
        }

    async def _place_until_reserved(
        self, sagas: asyncpg.Connection, seconds: float, connections: int
    ) -> tuple[dict, int, float]:
        """wrk placing orders for `seconds`; (wrk's figures, orders accepted, seconds until all reserved)."""
        awaiting_before = await self._awaiting(sagas)
        with tempfile.TemporaryDirectory() as directory:
            script = self._order_script(Path(directory))
            started = time.monotonic()
            posted = await asyncio.to_thread(wrk, f"{self.cluster.api}/orders/", seconds, connections, script)
            accepted = posted["requests"] - posted["non_2xx"]
            await eventually(
                lambda: self._awaiting(sagas),
                lambda count: count >= awaiting_before + accepted,
                timeout=600,
                interval=0.05,
            )
        return posted, accepted, time.monotonic() - started

    def _order_script(self, directory: Path, pacing: str = "") -> Path:
        """The wrk script placing orders as the bench's customer, with `pacing` (an open_loop_script) appended."""
        authorization = self.bench.customer["Authorization"]
        return order_script(directory / "orders.lua", self.bench.products, authorization, pacing)

    async def saga_latency(self) -> list[dict]:
        """Orders at each of RATES (open loop) for `seconds` each: POST latency, order commit to AWAITING_PAYMENT."""
        results = []
        for rate in RATES:
            results.append(await self.latency_at(rate))
            print(json.dumps(results[-1]))
        return results

    async def latency_at(self, rate: float) -> dict:
        """Orders at `rate` per second (open loop) for `seconds`: POST latency, order commit to AWAITING_PAYMENT,
        and that time hop by hop."""
        since = datetime.now(UTC)
        posted, order_ids = await self._post_at(rate)
        latencies = await reservation_latencies(self.cluster, order_ids)
        return {
            "rate_per_second": rate,
            "orders": len(order_ids),
            "post": posted,
            "awaiting_payment_ms_p50": round(percentile(latencies, 0.5), 1),
            "awaiting_payment_ms_p99": round(percentile(latencies, 0.99), 1),
            "hops_ms": await hop_latencies(self.cluster, since),
        }

    async def _post_at(self, rate: float) -> tuple[dict, list[uuid.UUID]]:
        """wrk's open-loop figures for orders at `rate`, and the ids of the orders it placed."""
        orders = await asyncpg.connect(asyncpg_dsn(self.cluster.database_url("ORDER_DATABASE_URL")))
        try:
            since = datetime.now(UTC)
            with tempfile.TemporaryDirectory() as directory:
                script = self._order_script(Path(directory), open_loop_script(rate))
                posted = await asyncio.to_thread(wrk_open_loop, f"{self.cluster.api}/orders/", self.seconds, script)
            placed = await orders.fetch("SELECT id FROM orders WHERE created_at >= $1", since)
        finally:
            await orders.close()
        return posted, [row["id"] for row in placed]

    async def _count_statements(self, sagas: asyncpg.Connection, connections: int) -> tuple[Counter, int]:
        """Statements per database for a shorter phase of the same load, and how many orders it placed."""
        await sagas.execute("ALTER SYSTEM SET log_statement = 'all'")
        await sagas.execute("ALTER SYSTEM SET log_line_prefix = 'db=%d '")
        await sagas.execute("SELECT pg_reload_conf()")
        log = self.cluster.processes["postgres"].log_path
        log_start = log.stat().st_size
        try:
            _, accepted, _ = await self._place_until_reserved(sagas, max(self.seconds / 2, 3), connections)
        finally:
            await sagas.execute("ALTER SYSTEM RESET log_statement")
            await sagas.execute("SELECT pg_reload_conf()")
        return _statements_by_database(log, log_start), accepted

    @staticmethod
    async def _awaiting(sagas: asyncpg.Connection) -> int:
        return await sagas.fetchval("SELECT count(*) FROM sagas WHERE state = 'AWAITING_PAYMENT'")


async def reservation_latencies(cluster: Cluster, order_ids: list[uuid.UUID]) -> list[float]:
    """Milliseconds from order commit (orders.created_at) to the saga entering AWAITING_PAYMENT (its step's start),
    once every one of `order_ids` got there."""
    sagas = await asyncpg.connect(asyncpg_dsn(cluster.database_url("SAGA_DATABASE_URL")))
    orders = await asyncpg.connect(asyncpg_dsn(cluster.database_url("ORDER_DATABASE_URL")))
    try:

        async def awaiting() -> int:
            return await sagas.fetchval(
                "SELECT count(*) FROM saga_steps WHERE name = 'await_payment' AND saga_id = ANY($1)", order_ids
            )

        await eventually(awaiting, lambda count: count == len(order_ids), timeout=300)
        started = dict(
            await sagas.fetch(
                "SELECT saga_id, started_at FROM saga_steps WHERE name = 'await_payment' AND saga_id = ANY($1)",
                order_ids,
            )
        )
        created = dict(await orders.fetch("SELECT id, created_at FROM orders WHERE id = ANY($1)", order_ids))
    finally:
        await sagas.close()
        await orders.close()
    return [(started[order_id] - created[order_id]).total_seconds() * 1000 for order_id in order_ids]


# The saga's path from an order's commit to AWAITING_PAYMENT: each event's relay hop (outbox created_at, its writer's
# transaction start, to published_at, the broker's acknowledgement) and consumer hop (published_at to the inbox's
# processed_at, the consuming transaction's start), per database and consumer.
_RELAYED = {
    "ORDER_DATABASE_URL": "order.placed",
    "SAGA_DATABASE_URL": "stock.reserve",
    "STOCK_DATABASE_URL": "stock.reserved",
}
_CONSUMERS = {"saga": "SAGA_DATABASE_URL", "stock_svc": "STOCK_DATABASE_URL"}  # each consumer's inbox


async def hop_latencies(cluster: Cluster, since: datetime) -> dict[str, dict[str, float]]:
    """p50/p99 milliseconds of each hop of events written since `since` (every hop of the saga's path is one of
    its three events: relayed, then consumed)."""
    published: dict[uuid.UUID, datetime] = {}
    hops: dict[str, list[float]] = {}
    for variable, event_type in _RELAYED.items():
        rows = await query(
            cluster,
            variable,
            "SELECT id, created_at, published_at FROM outbox"
            " WHERE event_type = $1 AND created_at >= $2 AND published_at IS NOT NULL",
            event_type,
            since,
        )
        hops[f"relay {event_type}"] = [(row["published_at"] - row["created_at"]).total_seconds() * 1000 for row in rows]
        published.update((row["id"], row["published_at"]) for row in rows)
    for consumer, variable in _CONSUMERS.items():
        rows = await query(
            cluster,
            variable,
            "SELECT event_id, event_type, processed_at FROM inbox WHERE consumer = $1 AND event_id = ANY($2)",
            consumer,
            list(published),
        )
        for row in rows:
            elapsed = (row["processed_at"] - published[row["event_id"]]).total_seconds() * 1000
            hops.setdefault(f"consume {row['event_type']} ({consumer})", []).append(elapsed)
    return {
        hop: {"p50": round(percentile(values, 0.5), 1), "p99": round(percentile(values, 0.99), 1)}
        for hop, values in hops.items()
        if values
    }


def plot(latency: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [row["rate_per_second"] for row in latency]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(rates, [row["awaiting_payment_ms_p50"] for row in latency], marker="o", label="p50")
    axes.plot(rates, [row["awaiting_payment_ms_p99"] for row in latency], marker="o", label="p99")
    axes.set_xlabel("orders per second (open loop, wrk)")
    axes.set_ylabel("order commit to AWAITING_PAYMENT (ms)")
    axes.set_title("Saga reservation latency against arrival rate")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(RESULTS / "saga-latency.png", dpi=120)


def _statements_by_database(log: Path, start: int) -> Counter:
    """Statements PostgreSQL logged since `start` (byte offset), per database: simple-protocol statements and
    executions of prepared ones (asyncpg's)."""
    counts: Counter = Counter()
    with log.open("rb") as lines:
        lines.seek(start)
        for line in lines:
            match = re.search(rb"db=(\w+) LOG:  (statement|execute)", line)
            if match:
                counts[match.group(1).decode()] += 1
    return counts


def by_package(per_process: dict[str, float]) -> dict[str, float]:
    """Figures of `saga.1`, `saga.2`, ... summed under `saga`."""
    sums: Counter = Counter()
    for name, value in per_process.items():
        sums[name.split(".")[0]] += value
    return {name: round(value, 2) for name, value in sums.items()}


async def first_event(api: httpx.AsyncClient) -> dict:
    """Right after every process reports ready: seconds from creating the first product (catalog_svc) until its
    inventory exists (stock_svc consumed product.created): the first event's hop, consumer groups already joined."""
    admin = await sign_in(api, ADMIN)
    body = {"name": "First", "description": "", "category": "Bench", "price": 10.0, "quantity": 10}
    started = time.monotonic()
    product_id = (await api.post("/products/", json=body, headers=admin)).json()["_id"]
    await eventually(
        lambda: api.get(f"/inventory/{product_id}", headers=admin), lambda r: r.status_code == 200, interval=0.01
    )
    return {"product_to_inventory_seconds": round(time.monotonic() - started, 3)}


async def main(seconds: float, scale: str) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("bench.http needs wrk: apt-get install wrk (Debian/Ubuntu), or your system's package")
    cluster = await Cluster(scale=scale).start()
    limits = httpx.Limits(max_connections=50)
    try:
        async with httpx.AsyncClient(base_url=cluster.api, timeout=60, limits=limits) as api:
            result = {"benchmark": "http (wrk)", "machine": machine(), "seconds_per_measurement": seconds}
            result["stack_scale"] = scale or "1"
            result["first_event_after_ready"] = await first_event(api)
            print("first event", json.dumps(result["first_event_after_ready"]))
            bench = Bench(cluster, api, seconds)
            await bench.prepare()
            measure = HttpBench(cluster, bench, seconds)
            await asyncio.sleep(5)  # the preparation's backlog settles
            result["idle"] = await asyncio.to_thread(measure.idle)
            print("idle", json.dumps(result["idle"], indent=2))
            result["gateway"] = await asyncio.to_thread(measure.gateway_ratio)
            print("gateway", json.dumps(result["gateway"], indent=2))
            if not scale:  # the open-loop figures are the single-instance stack's
                result["saga_latency"] = await measure.saga_latency()
            result["orders"] = await measure.orders()
            if scale:
                result["orders"]["cpu_ms_per_order_by_package"] = by_package(result["orders"]["cpu_ms_per_order"])
            print("orders", json.dumps(result["orders"], indent=2))
            if not scale:
                # The same arrival rate once more, now that the closed loop has filled the broker and the databases.
                result["saga_latency_after_closed_loop"] = await measure.latency_at(AFTER_CLOSED_LOOP_RATE)
                print("after the closed loop", json.dumps(result["saga_latency_after_closed_loop"]))
            return result
    finally:
        cluster.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--scale", default="", help="STACK_SCALE for the stack, e.g. 2 or saga=2 (default: one each)")
    arguments = parser.parse_args()
    outcome = run(main(arguments.seconds, arguments.scale))
    RESULTS.mkdir(exist_ok=True)
    name = f"http-scale-{arguments.scale}.json" if arguments.scale else "http.json"
    (RESULTS / name).write_text(json.dumps(outcome, indent=2) + "\n")
    if "saga_latency" in outcome:
        plot(outcome["saga_latency"])
