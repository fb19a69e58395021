"""The invariants every failure scenario checks once the system has settled, read straight from the services'
databases (asyncpg, PostgreSQL; pymongo for catalog_svc's outbox), never through the code under test.

Two kinds:
- convergence (liveness): every outbox drained, every saga terminal or awaiting payment, orders and sagas in
  agreement, stock in agreement with the sagas. They may lag behind a fault for a while: `settle` waits for them.
- safety: stock conserved and never negative, no effect applied twice. They must hold at every moment; `settle`
  checks them once the system has converged.

The checks are global (every order and product of the cluster, not only the scenario's): a later scenario also
re-checks what earlier scenarios left behind.
"""

import asyncio
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from pymongo import AsyncMongoClient

from common.database import asyncpg_dsn
from common.lag import PartitionLag, consumer_lag
from tests.cluster import Cluster

DATABASES = {
    "users": "USER_DATABASE_URL",
    "stock": "STOCK_DATABASE_URL",
    "orders": "ORDER_DATABASE_URL",
    "sagas": "SAGA_DATABASE_URL",
}
# Who consumes what another service's outbox publishes: (producer's database, topic, consumer's database, group).
FLOWS = (
    ("orders", "order-events", "sagas", "saga"),
    ("sagas", "stock-commands", "stock", "stock_svc"),
    ("stock", "stock-replies", "sagas", "saga"),
    ("sagas", "saga-events", "orders", "order_svc"),
)
FLOW_TOPICS = sorted({topic for _, topic, _, _ in FLOWS})
# A saga at rest: finished, or waiting for the customer. Anything else after settling is stuck.
AT_REST = {"AWAITING_PAYMENT", "COMPLETED", "REJECTED", "CANCELLED", "EXPIRED"}
# The saga states an order's status agrees with.
AGREES = {
    "pending": {"AWAITING_PAYMENT"},
    "paid": {"COMPLETED"},
    "shipped": {"COMPLETED"},
    "delivered": {"COMPLETED"},
    "rejected": {"REJECTED"},
    "cancelled": {"CANCELLED", "EXPIRED"},
}


@dataclass
class Invariant:
    name: str
    held: bool
    detail: str
    converges: bool = False  # may lag behind a fault (waited for), rather than hold at every moment

    def line(self) -> str:
        return f"  [{'ok' if self.held else 'FAIL'}] {self.name}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "held": self.held, "detail": self.detail}


def _examples(items, limit: int = 3) -> str:
    items = list(items)
    shown = ", ".join(str(item) for item in items[:limit])
    return f"{shown}{', ...' if len(items) > limit else ''}"


class Snapshot:
    """What the databases hold at one moment (each database read in one repeatable-read transaction)."""

    def __init__(self) -> None:
        self.unpublished: dict[str, int] = {}
        self.relay_dead_letters: dict[str, int] = {}
        self.inbox_duplicates: dict[str, int] = {}
        self.inbox_dead_letters: dict[str, int] = {}
        self.orders: dict[str, str] = {}  # order id -> status
        self.order_items: dict[str, Counter] = defaultdict(Counter)  # order id -> product id -> units
        self.order_event_repeats: list[tuple] = []
        self.sagas: dict[str, str] = {}  # order id -> state
        self.saga_items: dict[str, Counter] = defaultdict(Counter)
        self.saga_repeats: list[tuple] = []
        self.saga_step_repeats: list[tuple] = []
        self.saga_event_repeats: list[tuple] = []
        self.items: list[asyncpg.Record] = []
        self.reservations: list[asyncpg.Record] = []
        self.history_repeats: list[tuple] = []
        self.released_and_confirmed: list[tuple] = []
        self.command_repeats: list[tuple] = []
        self.negative_history: int = 0
        self.lags: list[PartitionLag] = []
        self.published: dict[str, list[tuple[str, str, str]]] = {}  # db -> (topic, aggregate id, event id) by position
        self.consumed: dict[tuple[str, str], dict[str, Any]] = {}  # (db, consumer) -> event id -> when applied
        self.in_order: bool | None = None  # whether the consumption order was read (`take(..., order=True)`)

    @classmethod
    async def take(cls, cluster: Cluster, order: bool = False) -> "Snapshot":
        """What the databases and the broker hold now; with `order`, also every event's publication and
        consumption order (heavier: read once the system has settled)."""
        snapshot = cls()
        for name, variable in DATABASES.items():
            connection = await asyncpg.connect(asyncpg_dsn(cluster.database_url(variable)), timeout=10)
            try:
                async with connection.transaction(isolation="repeatable_read", readonly=True):
                    await snapshot._read_common(name, connection)
                    await getattr(snapshot, f"_read_{name}")(connection)
                    if order:
                        await snapshot._read_order(name, connection)
            finally:
                await connection.close()
        await snapshot._read_catalog(cluster)
        snapshot.lags = await consumer_lag(cluster.stack.bootstrap_servers)
        snapshot.in_order = order
        return snapshot

    async def _read_order(self, name: str, db: asyncpg.Connection) -> None:
        rows = await db.fetch(
            "SELECT topic, aggregate_id, id::text FROM outbox WHERE topic = ANY($1::text[]) ORDER BY position",
            FLOW_TOPICS,
        )
        self.published[name] = [tuple(row) for row in rows]
        for _, _, consumer_db, consumer in FLOWS:
            if consumer_db == name and (name, consumer) not in self.consumed:
                rows = await db.fetch("SELECT event_id::text, processed_at FROM inbox WHERE consumer = $1", consumer)
                self.consumed[(name, consumer)] = dict(rows)  # type: ignore[arg-type]

    async def _read_common(self, name: str, db: asyncpg.Connection) -> None:
        self.unpublished[name] = await db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        self.relay_dead_letters[name] = await db.fetchval("SELECT count(*) FROM outbox_dead_letter")
        if await db.fetchval("SELECT to_regclass('inbox') IS NOT NULL"):
            self.inbox_duplicates[name] = await db.fetchval(
                "SELECT count(*) FROM (SELECT 1 FROM inbox GROUP BY consumer, event_id HAVING count(*) > 1) AS d"
            )
            self.inbox_dead_letters[name] = await db.fetchval("SELECT count(*) FROM inbox_dead_letter")

    async def _read_users(self, db: asyncpg.Connection) -> None:
        pass

    async def _read_orders(self, db: asyncpg.Connection) -> None:
        self.orders = {str(row["id"]): row["status"] for row in await db.fetch("SELECT id, status FROM orders")}
        for row in await db.fetch("SELECT order_id, product_id, quantity FROM order_items"):
            self.order_items[str(row["order_id"])][row["product_id"]] += row["quantity"]
        self.order_event_repeats = [
            tuple(row)
            for row in await db.fetch(
                # An orphan's order.placed is published again on purpose (order_svc/reconciler.py).
                "SELECT aggregate_id, event_type, count(*) FROM outbox WHERE topic = 'order-events'"
                " AND NOT (event_type = 'order.placed'"
                " AND aggregate_id IN (SELECT id::text FROM orders WHERE placed_again_at IS NOT NULL))"
                " GROUP BY 1, 2 HAVING count(*) > 1"
            )
        ]

    async def _read_sagas(self, db: asyncpg.Connection) -> None:
        for row in await db.fetch("SELECT order_id, state, items FROM sagas"):
            order_id = str(row["order_id"])
            self.sagas[order_id] = row["state"]
            for item in _json(row["items"]):
                self.saga_items[order_id][item["product_id"]] += item["quantity"]
        self.saga_repeats = [
            tuple(row) for row in await db.fetch("SELECT order_id, count(*) FROM sagas GROUP BY 1 HAVING count(*) > 1")
        ]
        self.saga_step_repeats = [
            tuple(row)
            for row in await db.fetch(
                # A failed step is started over (automatically, or by an admin): one of each that did not fail.
                "SELECT saga_id, name, count(*) FROM saga_steps WHERE state <> 'failed' GROUP BY 1, 2"
                " HAVING count(*) > 1"
            )
        ]
        self.saga_event_repeats = [
            tuple(row)
            for row in await db.fetch(
                "SELECT aggregate_id, event_type, count(*) FROM outbox WHERE topic = 'saga-events'"
                " GROUP BY 1, 2 HAVING count(*) > 1"
            )
        ]

    async def _read_stock(self, db: asyncpg.Connection) -> None:
        self.items = await db.fetch(
            """
            SELECT i.id, i.product_id, i.available_quantity AS available, i.reserved_quantity AS reserved,
                   coalesce(sum(r.quantity) FILTER (WHERE r.status = 'held'), 0) AS held,
                   coalesce(sum(r.quantity) FILTER (WHERE r.status = 'confirmed'), 0) AS sold,
                   (SELECT coalesce(sum(h.change), 0) FROM stock_history h
                     WHERE h.item_id = i.id AND h.type IN ('created', 'updated', 'adjusted')) AS supplied,
                   (SELECT count(*) FROM stock_history h WHERE h.item_id = i.id AND h.type = 'created') AS created,
                   (SELECT array[h.available_after, h.reserved_after] FROM stock_history h
                     WHERE h.item_id = i.id ORDER BY h.id DESC LIMIT 1) AS last_history
              FROM inventory_items i LEFT JOIN reservations r ON r.item_id = i.id
             GROUP BY i.id
            """
        )
        self.reservations = await db.fetch(
            "SELECT r.order_id, i.product_id, r.quantity, r.status FROM reservations r"
            " JOIN inventory_items i ON i.id = r.item_id"
        )
        self.history_repeats = [
            tuple(row)
            for row in await db.fetch(
                "SELECT item_id, reference, type, count(*) FROM stock_history"
                " WHERE type IN ('reserved', 'released', 'confirmed') GROUP BY 1, 2, 3 HAVING count(*) > 1"
            )
        ]
        self.released_and_confirmed = [
            tuple(row)
            for row in await db.fetch(
                "SELECT item_id, reference FROM stock_history WHERE type IN ('released', 'confirmed')"
                " GROUP BY 1, 2 HAVING count(DISTINCT type) > 1"
            )
        ]
        self.command_repeats = [
            tuple(row)
            for row in await db.fetch(
                "SELECT order_id, command, count(*) FROM handled_commands GROUP BY 1, 2 HAVING count(*) > 1"
            )
        ]
        self.negative_history = await db.fetchval(
            "SELECT count(*) FROM stock_history WHERE available_after < 0 OR reserved_after < 0"
        )

    async def _read_catalog(self, cluster: Cluster) -> None:
        url = cluster.env_of("outbox_relay").get("OUTBOX_MONGO_URL")
        if not url:
            return
        client = AsyncMongoClient(url, serverSelectionTimeoutMS=10_000)
        try:
            database = client.get_default_database()
            self.unpublished["catalog"] = await database["outbox"].count_documents({"published_at": None})
            self.relay_dead_letters["catalog"] = await database["outbox_dead_letter"].count_documents({})
        finally:
            await client.close()

    # --- the invariants ------------------------------------------------------------------------------------------

    def invariants(self) -> list[Invariant]:
        return [
            self.outbox_published(),
            self.sagas_at_rest(),
            self.orders_have_sagas(),
            self.orders_agree_with_sagas(),
            self.stock_agrees_with_sagas(),
            self.stock_conserved(),
            self.stock_not_negative(),
            self.effects_once(),
            self.consumers_caught_up(),
            *([self.consumed_in_order()] if self.in_order else []),
        ]

    def consumers_caught_up(self) -> Invariant:
        behind = [lag for lag in self.lags if lag.lag]
        groups = sorted({lag.group for lag in self.lags})
        detail = f"{len(self.lags)} partitions of groups {groups}: lag {sum(lag.lag for lag in behind)}"
        if behind:
            detail += f" ({_examples(f'{lag.group} {lag.topic}[{lag.partition}] {lag.lag}' for lag in behind)})"
        return Invariant("every consumer group's lag is zero", not behind, detail, converges=True)

    def consumed_in_order(self) -> Invariant:
        """Each aggregate's events applied by each consumer in the order of its outbox (the moment a consumer
        applied an event is its inbox row's time; events applied in one transaction share it)."""
        checked, disordered = 0, []
        for producer, topic, consumer_db, consumer in FLOWS:
            applied = self.consumed.get((consumer_db, consumer), {})
            last: dict[str, Any] = {}
            for event_topic, aggregate, event_id in self.published.get(producer, []):
                if event_topic != topic or event_id not in applied:
                    continue
                checked += 1
                when = applied[event_id]
                if aggregate in last and when < last[aggregate]:
                    disordered.append((consumer, topic, aggregate))
                last[aggregate] = max(when, last.get(aggregate, when))
        detail = f"{checked} events of {len(FLOWS)} flows applied in outbox order"
        if disordered:
            detail = f"{len(disordered)} events applied before an earlier one of theirs ({_examples(disordered)})"
        return Invariant("an aggregate's events consumed in outbox order", not disordered, detail)

    def outbox_published(self) -> Invariant:
        pending = {name: count for name, count in self.unpublished.items() if count}
        dead = {name: count for name, count in self.relay_dead_letters.items() if count}
        detail = f"unpublished {pending or 'none'}, relay dead letters {dead or 'none'} in {sorted(self.unpublished)}"
        return Invariant("every committed outbox row published", not pending and not dead, detail, converges=True)

    def sagas_at_rest(self) -> Invariant:
        states = Counter(self.sagas.values())
        stuck = {state: count for state, count in states.items() if state not in AT_REST}
        detail = f"{len(self.sagas)} sagas {dict(sorted(states.items()))}"
        if stuck:
            detail += f"; not at rest: {stuck}"
        return Invariant("every saga terminal or AWAITING_PAYMENT", not stuck, detail, converges=True)

    def orders_have_sagas(self) -> Invariant:
        orphans = self.orders.keys() - self.sagas.keys()
        strays = self.sagas.keys() - self.orders.keys()
        different = [
            order_id
            for order_id in self.orders.keys() & self.sagas.keys()
            if self.order_items[order_id] != self.saga_items[order_id]
        ]
        detail = f"{len(self.orders)} orders, {len(self.sagas)} sagas"
        if orphans:
            detail += f"; orders without saga {len(orphans)} ({_examples(orphans)})"
        if strays:
            detail += f"; sagas without order {len(strays)} ({_examples(strays)})"
        if different:
            detail += f"; sagas with other items than their order {len(different)} ({_examples(different)})"
        return Invariant(
            "no order without its saga, no saga without its order", not (orphans or strays or different), detail, True
        )

    def orders_agree_with_sagas(self) -> Invariant:
        disagreeing = [
            (order_id, status, self.sagas[order_id])
            for order_id, status in self.orders.items()
            if order_id in self.sagas and self.sagas[order_id] not in AGREES.get(status, set())
        ]
        statuses = dict(sorted(Counter(self.orders.values()).items()))
        detail = f"order statuses {statuses}"
        if disagreeing:
            detail += f"; {len(disagreeing)} disagree with their saga ({_examples(disagreeing)})"
        return Invariant("every order's status agrees with its saga", not disagreeing, detail, converges=True)

    def stock_agrees_with_sagas(self) -> Invariant:
        """Held units are exactly the items of the sagas awaiting payment, confirmed ones those of the completed
        sagas; a rejected, cancelled or expired saga holds nothing."""
        held: dict[str, Counter] = defaultdict(Counter)
        confirmed: dict[str, Counter] = defaultdict(Counter)
        for reservation in self.reservations:
            if reservation["status"] == "held":
                held[reservation["order_id"]][reservation["product_id"]] += reservation["quantity"]
            elif reservation["status"] == "confirmed":
                confirmed[reservation["order_id"]][reservation["product_id"]] += reservation["quantity"]
        wrong = []
        for order_id in self.sagas.keys() | held.keys() | confirmed.keys():
            state = self.sagas.get(order_id)
            expected_held = self.saga_items[order_id] if state == "AWAITING_PAYMENT" else Counter()
            expected_confirmed = self.saga_items[order_id] if state == "COMPLETED" else Counter()
            if state not in AT_REST:
                continue  # reported by sagas_at_rest
            if (
                held.get(order_id, Counter()) != expected_held
                or confirmed.get(order_id, Counter()) != expected_confirmed
            ):
                wrong.append((order_id, state, dict(held.get(order_id, {})), dict(confirmed.get(order_id, {}))))
        detail = (
            f"{sum(len(c) for c in held.values())} held and {sum(len(c) for c in confirmed.values())} confirmed"
            f" reservations match the sagas"
        )
        if wrong:
            detail = f"{len(wrong)} orders whose reservations disagree with their saga ({_examples(wrong)})"
        return Invariant(
            "stock held/confirmed exactly for the sagas awaiting payment/completed", not wrong, detail, True
        )

    def stock_conserved(self) -> Invariant:
        broken = []
        for item in self.items:
            conserved = item["available"] + item["reserved"] + item["sold"] == item["supplied"]
            reserved_is_held = item["reserved"] == item["held"]
            history_current = list(item["last_history"] or []) == [item["available"], item["reserved"]]
            if not (conserved and reserved_is_held and history_current):
                broken.append(
                    f"{item['product_id']}: available {item['available']} + reserved {item['reserved']}"
                    f" + sold {item['sold']} vs initial+adjustments {item['supplied']}, held {item['held']},"
                    f" last history {item['last_history']}"
                )
        total = {key: sum(item[key] for item in self.items) for key in ("available", "reserved", "sold", "supplied")}
        detail = (
            f"{len(self.items)} products: available {total['available']} + reserved {total['reserved']}"
            f" + sold {total['sold']} = initial+adjustments {total['supplied']}; reserved = held reservations"
        )
        if broken:
            detail = f"{len(broken)} products out of balance ({_examples(broken)})"
        return Invariant("per product: available + reserved + sold = initial + adjustments", not broken, detail)

    def stock_not_negative(self) -> Invariant:
        negative = [item["product_id"] for item in self.items if item["available"] < 0 or item["reserved"] < 0]
        detail = f"negative items {len(negative)}, negative history rows {self.negative_history}"
        return Invariant("no negative stock", not negative and not self.negative_history, detail)

    def effects_once(self) -> Invariant:
        per_product = Counter(item["product_id"] for item in self.items)
        repeats = {
            "reservation/(order,product)": _repeated(
                Counter((r["order_id"], r["product_id"]) for r in self.reservations)
            ),
            "reserve|release|confirm history/(order,product)": self.history_repeats,
            "release+confirm/(order,product)": self.released_and_confirmed,
            "applied command/(order,command)": self.command_repeats,
            "inventory item/product": _repeated(per_product),
            "'created' history/item": [item["product_id"] for item in self.items if item["created"] != 1],
            "inbox row/(consumer,event)": [(db, n) for db, n in self.inbox_duplicates.items() if n],
            "saga/order": self.saga_repeats,
            "saga step not failed/(saga,step)": self.saga_step_repeats,
            "order event/(order,type)": self.order_event_repeats,
            "saga verdict/(order,type)": self.saga_event_repeats,
        }
        found = {what: rows for what, rows in repeats.items() if rows}
        detail = f"repeated: {found}" if found else "at most one " + "; ".join(repeats)
        return Invariant("no effect applied twice", not found, detail)


def _repeated(counts: Counter) -> list:
    return [key for key, count in counts.items() if count > 1]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def settle(cluster: Cluster, timeout: float = 180.0, interval: float = 0.5) -> tuple[list[Invariant], float]:
    """Wait (up to `timeout` s) until every convergence invariant holds, then check them all. Returns the
    invariants and how long settling took."""
    started = time.monotonic()
    while True:
        try:
            invariants = (await Snapshot.take(cluster)).invariants()
            converged = all(invariant.held for invariant in invariants if invariant.converges)
            if converged or time.monotonic() - started > timeout:
                settled = time.monotonic() - started
                return (await Snapshot.take(cluster, order=True)).invariants(), settled
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError) as error:
            if time.monotonic() - started > timeout:
                raise
            print(f"  (databases or broker not reachable yet: {error!r})")
            await asyncio.sleep(1)
            continue
        await asyncio.sleep(interval)
