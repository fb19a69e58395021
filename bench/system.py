"""Benchmarks of the whole running system (every process from the local stack's plan, durable PostgreSQL):

- orders: order placement through the gateway (wrk, closed loop) against the PostgreSQL ceiling for the same writes
  (an order, two items and an outbox row per transaction, by pgbench, in the same run): the ratio;
- stock: reservations/s straight to stock_svc on one hot product and spread over 100 (wrk); catalog listing by
  category through the gateway (wrk).

The gateway's overhead, the cost of an order per process and the saga's latency at fixed arrival rates are
bench.http's. Needs `wrk`; pgbench comes with the PostgreSQL the stack runs.

    python -m bench.system [--seconds 8]

Results: bench/results/system.json.
"""

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

from bench.environment import RESULTS, machine, run
from bench.wrk import order_script, reserve_script, wrk
from common.database import asyncpg_dsn, ensure_database
from common.outbox import OUTBOX_DDL
from stack.infra import postgres_bin
from tests.cluster import ADMIN, Cluster, eventually, new_customer, sign_in

ADDRESS = {"line1": "1 Bench Street", "city": "Benchville", "state": "BN", "postal_code": "1", "country": "Bench"}
PRODUCTS = 100

CEILING_DDL = """
CREATE TABLE IF NOT EXISTS orders (
    id uuid PRIMARY KEY, user_id integer NOT NULL, status varchar(16) NOT NULL, total_price numeric(12,2) NOT NULL,
    shipping_address jsonb NOT NULL, status_reason text, created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_user_created ON orders (user_id, created_at);
CREATE TABLE IF NOT EXISTS order_items (
    id bigserial PRIMARY KEY, order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id varchar(100) NOT NULL, quantity integer NOT NULL, price numeric(12,2) NOT NULL,
    UNIQUE (order_id, product_id)
);
"""

# An order, its two items and its outbox row, in one statement as order_svc writes them (order_svc/orders.py).
CEILING_TRANSACTION = """
\\set product random(1, 100)
WITH placed AS (
    INSERT INTO orders VALUES (gen_random_uuid(), 1, 'pending', 20.00, '{"line1": "1 Bench Street"}'::jsonb, NULL,
        now(), now())
    RETURNING id
), items AS (
    INSERT INTO order_items (order_id, product_id, quantity, price)
    SELECT placed.id, 'bench-' || product, 1, 10.00 FROM placed, unnest(ARRAY[:product, :product + 100]) AS product
)
INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, topic, payload, headers)
SELECT gen_random_uuid(), 'order', placed.id::text, 'order.placed', 'order-events',
    jsonb_build_object('order_id', placed.id), '{}'::jsonb
FROM placed;
"""


def pgbench(database_url: str, script: Path, seconds: float, clients: int) -> dict:
    """pgbench (PostgreSQL's own load generator) running `script` with `clients` connections: tps and latency."""
    parts = urlsplit(asyncpg_dsn(database_url))
    command = [str(postgres_bin() / "pgbench"), "-n", "-M", "prepared", "-f", str(script), "-c", str(clients)]
    command += ["-j", "2", "-T", str(round(seconds)), "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port)]
    command += ["-U", parts.username or "postgres", parts.path.lstrip("/")]
    environment = {**os.environ, "PGPASSWORD": parts.password or ""}
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=environment).stdout
    return {
        "transactions_per_second": round(float(re.search(r"tps = ([\d.]+)", output).group(1)), 1),
        "transactions": int(re.search(r"number of transactions actually processed: (\d+)", output).group(1)),
        "latency_ms_average": float(re.search(r"latency average = ([\d.]+) ms", output).group(1)),
    }


class Bench:
    def __init__(self, cluster: Cluster, api: httpx.AsyncClient, seconds: float) -> None:
        self.cluster, self.api, self.seconds = cluster, api, seconds
        self.products: list[str] = []

    async def prepare(self) -> None:
        self.admin = await sign_in(self.api, ADMIN)
        self.customer = await new_customer(self.api, f"bench-{uuid.uuid4().hex[:6]}@example.com")
        for number in range(PRODUCTS):
            body = {
                "name": f"Bench {number}",
                "description": "",
                "category": "Bench",
                "price": 10.0,
                "quantity": 1_000_000,
            }
            response = await self.api.post("/products/", json=body, headers=self.admin)
            response.raise_for_status()
            self.products.append(response.json()["_id"])
        # Ready when the last product reached stock_svc and order_svc's price read model.
        await eventually(
            lambda: self.api.get(f"/inventory/{self.products[-1]}", headers=self.admin),
            lambda response: response.status_code == 200,
            timeout=120,
        )
        await eventually(self.place, lambda ok: ok, timeout=120)

    def order(self) -> dict:
        first, second = random.sample(self.products, 2)
        items = [
            {"product_id": first, "quantity": 1, "price": 10.0},
            {"product_id": second, "quantity": 1, "price": 10.0},
        ]
        return {"items": items, "shipping_address": ADDRESS}

    async def place(self) -> bool:
        response = await self.api.post("/orders/", json=self.order(), headers=self.customer)
        return response.status_code == 201

    # --- (1) order placement against the PostgreSQL ceiling ----------------------------------------------------

    async def order_throughput(self) -> dict:
        with tempfile.TemporaryDirectory() as directory:
            script = order_script(Path(directory) / "orders.lua", self.products, self.customer["Authorization"])
            orders = await asyncio.to_thread(wrk, f"{self.cluster.api}/orders/", self.seconds, 32, script)
        ceiling = await self.postgres_ceiling()
        return {
            "orders_through_gateway_wrk": orders,
            "postgres_ceiling_same_writes_pgbench": ceiling,
            "ratio_to_ceiling": round(orders["requests_per_second"] / ceiling["transactions_per_second"], 3),
        }

    async def postgres_ceiling(self) -> dict:
        """pgbench writing what an order placement writes (CEILING_TRANSACTION), 16 clients, in a database of its own
        on the same server."""
        base = self.cluster.database_url("ORDER_DATABASE_URL").rsplit("/", 1)[0]
        url = f"{base}/bench_ceiling"
        await ensure_database(url)
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await connection.execute(CEILING_DDL + OUTBOX_DDL)
            await connection.execute("TRUNCATE orders, order_items, outbox CASCADE")
        finally:
            await connection.close()
        with tempfile.TemporaryDirectory() as directory:
            script = Path(directory) / "order.sql"
            script.write_text(CEILING_TRANSACTION)
            return await asyncio.to_thread(pgbench, url, script, self.seconds, clients=16)

    # --- (2) stock and catalog -------------------------------------------------------------------------------

    async def stock_and_catalog(self) -> dict:
        reserve = f"{self.cluster.parts['stock_svc'].address}/api/v1/inventory/reserve"
        listing = f"{self.cluster.api}/products/?category=Bench&limit=50"
        with tempfile.TemporaryDirectory() as directory:
            admin, nonce = self.admin["Authorization"], uuid.uuid4().hex[:8]  # order ids unique to this run
            hot = reserve_script(Path(directory) / "hot.lua", self.products[:1], admin, nonce + "0")
            spread = reserve_script(Path(directory) / "spread.lua", self.products, admin, nonce + "1")
            return {
                "reservations_one_hot_product": await asyncio.to_thread(wrk, reserve, self.seconds, 32, hot),
                "reservations_over_100_products": await asyncio.to_thread(wrk, reserve, self.seconds, 32, spread),
                "catalog_list_by_category_through_gateway": await asyncio.to_thread(wrk, listing, self.seconds, 16),
            }


async def main(seconds: float) -> dict:
    cluster = await Cluster().start()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    try:
        async with httpx.AsyncClient(base_url=cluster.api, timeout=60, limits=limits) as api:
            bench = Bench(cluster, api, seconds)
            await bench.prepare()
            result = {"benchmark": "system", "machine": machine(), "seconds_per_measurement": seconds}
            for name, measure in (
                ("orders", bench.order_throughput),
                ("stock_and_catalog", bench.stock_and_catalog),
            ):
                result[name] = await measure()
                print(name, json.dumps(result[name], indent=2))
            return result
    finally:
        cluster.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    outcome = run(main(parser.parse_args().seconds))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "system.json").write_text(json.dumps(outcome, indent=2) + "\n")
