"""Benchmarks of the whole running system (every process from the local stack's plan, durable PostgreSQL):

- orders: order placement through the gateway (closed loop) against the PostgreSQL ceiling for the same writes
  (an order, two items and an outbox row per transaction, by raw asyncpg, in the same run): the ratio;
- gateway: the same request straight to the service and through the gateway;
- stock: reservations/s on one hot product and spread over 100; catalog listing by category.

The saga's latency at fixed arrival rates is bench.http's (wrk: a Python client here would share the cores).

    python -m bench.system [--seconds 8]

Results: bench/results/system.json.
"""

import argparse
import asyncio
import json
import random
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import httpx

from bench.environment import RESULTS, machine, percentile
from bench.load import Measured, closed_loop
from common.database import asyncpg_dsn, ensure_database
from common.outbox import OUTBOX_DDL
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
        await eventually(lambda: self.place(0), lambda ok: ok, timeout=120)

    def order(self) -> dict:
        first, second = random.sample(self.products, 2)
        items = [
            {"product_id": first, "quantity": 1, "price": 10.0},
            {"product_id": second, "quantity": 1, "price": 10.0},
        ]
        return {"items": items, "shipping_address": ADDRESS}

    async def place(self, _: int) -> bool:
        response = await self.api.post("/orders/", json=self.order(), headers=self.customer)
        return response.status_code == 201

    # --- (1) order placement against the PostgreSQL ceiling ----------------------------------------------------

    async def order_throughput(self) -> dict:
        orders = await closed_loop(self.place, workers=32, seconds=self.seconds)
        ceiling = await self.postgres_ceiling()
        return {
            "orders_through_gateway": orders.summary(),
            "postgres_ceiling_same_writes": ceiling.summary(),
            "ratio_to_ceiling": round(orders.per_second / ceiling.per_second, 3),
        }

    async def postgres_ceiling(self) -> Measured:
        base = self.cluster.database_url("ORDER_DATABASE_URL").rsplit("/", 1)[0]
        url = f"{base}/bench_ceiling"
        await ensure_database(url)
        pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=16, max_size=16)
        await pool.execute(CEILING_DDL + OUTBOX_DDL)
        await pool.execute("TRUNCATE orders, order_items, outbox CASCADE")

        async def transaction(_: int) -> bool:
            order_id, now = uuid.uuid4(), datetime.now(UTC)
            items = self.order()["items"]
            async with pool.acquire() as connection, connection.transaction():
                await connection.execute(
                    "INSERT INTO orders VALUES ($1, 1, 'pending', $2, $3::jsonb, NULL, $4, $4)",
                    order_id,
                    Decimal("20.00"),
                    json.dumps(ADDRESS),
                    now,
                )
                await connection.executemany(
                    "INSERT INTO order_items (order_id, product_id, quantity, price) VALUES ($1, $2, $3, $4)",
                    [(order_id, item["product_id"], 1, Decimal("10.00")) for item in items],
                )
                await connection.execute(
                    "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, topic, payload, headers)"
                    " VALUES ($1, 'order', $2, 'order.placed', 'order-events', $3::jsonb, '{}'::jsonb)",
                    uuid.uuid4(),
                    str(order_id),
                    json.dumps({"order_id": str(order_id), "items": items}),
                )
            return True

        try:
            return await closed_loop(transaction, workers=16, seconds=self.seconds)
        finally:
            await pool.close()

    # --- (2) the gateway's overhead; (3) stock and catalog -------------------------------------------------------

    async def gateway_overhead(self) -> dict:
        direct = self.cluster.parts["user_svc"].address
        async with httpx.AsyncClient(base_url=direct, timeout=30) as straight:

            async def via(client: httpx.AsyncClient, path: str) -> bool:
                return (await client.get(path)).status_code == 200

            without = await closed_loop(lambda _: via(straight, "/api/v1/.well-known/jwks.json"), 16, self.seconds)
            through = await closed_loop(lambda _: via(self.api, "/.well-known/jwks.json"), 16, self.seconds)
        return {
            "request": "GET /api/v1/.well-known/jwks.json (in memory, no database)",
            "direct": without.summary(),
            "through_gateway": through.summary(),
            "added_latency_ms_p50": round(
                percentile(through.latencies_ms, 0.5) - percentile(without.latencies_ms, 0.5), 2
            ),
        }

    async def stock_and_catalog(self) -> dict:
        stock = self.cluster.parts["stock_svc"].address
        async with httpx.AsyncClient(base_url=stock, timeout=30) as client:

            async def reserve(products: list[str]) -> bool:
                body = {"product_id": random.choice(products), "quantity": 1, "order_id": uuid.uuid4().hex}
                response = await client.post("/api/v1/inventory/reserve", json=body, headers=self.admin)
                return response.status_code == 200

            hot = await closed_loop(lambda _: reserve(self.products[:1]), 32, self.seconds)
            spread = await closed_loop(lambda _: reserve(self.products), 32, self.seconds)

        async def by_category(_: int) -> bool:
            return (await self.api.get("/products/?category=Bench&limit=50")).status_code == 200

        listing = await closed_loop(by_category, 16, self.seconds)
        return {
            "reservations_one_hot_product": hot.summary(),
            "reservations_over_100_products": spread.summary(),
            "catalog_list_by_category_through_gateway": listing.summary(),
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
                ("gateway", bench.gateway_overhead),
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
    outcome = asyncio.run(main(parser.parse_args().seconds))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "system.json").write_text(json.dumps(outcome, indent=2) + "\n")
