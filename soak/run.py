"""One soak: the whole system started (tests/cluster.py), load and faults for a while, then healed, settled and
judged by the failure suite's invariants (tests/failure/invariants.py) plus the soak's own: every order answered
201 exists, and no Idempotency-Key placed two; no inbox dead letter (the soak injects no poison)."""

import asyncio
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from common.database import asyncpg_dsn
from saga.models import TERMINAL_STATES
from soak.load import IN_FLIGHT, Shop
from soak.nemesis import Nemesis
from soak.schedule import faults
from tests.cluster import Cluster, eventually
from tests.failure.invariants import Invariant, settle

SETTLE_TIMEOUT = 300.0  # seconds for the healed system to converge


@dataclass(frozen=True)
class SoakSettings:
    seed: int
    seconds: float
    scale: str = "2"
    brokers: int = 1
    rates: tuple[float, float] = (30.0, 150.0)  # orders per second, lowest and highest
    payment_timeout: float = 20.0
    step_timeout: float = 1.0  # with STEP_MAX_ATTEMPTS=5 a step's budget is 1+2+4+8+16 = 31 s
    step_max_attempts: int = 5

    @property
    def step_budget(self) -> float:
        return self.step_timeout * (2**self.step_max_attempts - 1)


async def soak(settings: SoakSettings, logs: Path) -> dict:
    """Run one soak and return its report; the processes' logs are copied to `logs` if an invariant failed."""
    environment = {
        "PAYMENT_TIMEOUT": str(settings.payment_timeout),
        "STEP_TIMEOUT": str(settings.step_timeout),
        "STEP_MAX_ATTEMPTS": str(settings.step_max_attempts),
        "FAILED_RETRY_DELAY": str(settings.step_budget),
        # Orders still pending a minute after their deadline are orphans (order_svc/reconciler.py).
        "ORPHAN_AFTER": str(settings.payment_timeout + 60),
        "ORPHAN_CHECK_INTERVAL": "5",
    }
    cluster = Cluster(service_env=environment, scale=settings.scale, brokers=settings.brokers)
    started = time.monotonic()
    await cluster.start()
    try:
        targets = sorted(cluster.processes)
        brokers = [name for name in targets if name.split(".")[0] == "broker"]
        schedule = faults(settings.seed, settings.seconds, targets, brokers, long_outage=settings.step_budget * 1.3)
        # Every connection kept alive (httpx keeps 20 by default: the others were opened and closed per request).
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        async with httpx.AsyncClient(base_url=cluster.api, timeout=10, limits=limits) as api:
            shop = Shop(api, settings.seed, settings.payment_timeout, settings.rates)
            await shop.open(run_id=uuid.uuid4().hex[:8])
            nemesis = Nemesis(cluster, schedule)
            print(f"soak seed {settings.seed}: {settings.seconds:.0f} s, {len(schedule)} faults scheduled", flush=True)
            load_started = time.monotonic()
            await asyncio.gather(shop.run(settings.seconds), nemesis.run(settings.seconds))
            await nemesis.heal()
            await nemesis.restart_crashed(load_started)
            loaded = time.monotonic() - load_started
            await _every_saga_ended(cluster)
            invariants, settled = await settle(cluster, timeout=SETTLE_TIMEOUT)
            invariants += await _client_invariants(cluster, shop)
            crashes = [f"{crash['target']} at {crash['at']} s" for crash in nemesis.crashed]
            invariants.append(Invariant("no process exited by itself", not crashes, ", ".join(crashes) or "none"))
            orders = await _orders_by_state(cluster)
        held = all(invariant.held for invariant in invariants)
        if not held:
            shutil.copytree(cluster.directory / "logs", logs, dirs_exist_ok=True)
        return {
            "seed": settings.seed,
            "seconds_of_load": round(loaded, 1),
            "seconds_to_settle": round(settled, 1),
            "seconds_in_all": round(time.monotonic() - started, 1),
            "settings": {**settings.__dict__, "rates": list(settings.rates)},
            "orders": orders,
            "load": shop.tally.as_dict(),
            "faults_by_kind": nemesis.by_kind,
            "faults": nemesis.injected,
            "crashed": nemesis.crashed,
            "invariants": [invariant.as_dict() for invariant in invariants],
            "held": held,
            "logs": None if held else str(logs),
        }
    finally:
        cluster.stop()


async def _every_saga_ended(cluster: Cluster) -> None:
    """Quiet: every order of the soak is paid, cancelled or abandoned, so at rest every saga has ended. Until then a
    payment deadline, a step's resend or a FAILED saga's retry is still to come (a retry may be minutes away: as
    long again as the saga had lived), and the invariants, read one database after the other, would catch the
    system between two moves."""
    sagas = await asyncpg.connect(asyncpg_dsn(cluster.database_url("SAGA_DATABASE_URL")))
    ended = sorted(TERMINAL_STATES)
    try:
        await eventually(
            lambda: sagas.fetchval("SELECT count(*) FROM sagas WHERE state <> ALL($1::text[])", ended),
            lambda moving: moving == 0,
            timeout=SETTLE_TIMEOUT,
            interval=1,
        )
    except AssertionError as still:  # the invariants will say what did not end
        print(f"  sagas still moving after {SETTLE_TIMEOUT:.0f} s: {still}", flush=True)
    finally:
        await sagas.close()


async def _client_invariants(cluster: Cluster, shop: Shop) -> list[Invariant]:
    accepted = set(shop.tally.accepted)
    connection = await asyncpg.connect(asyncpg_dsn(cluster.database_url("ORDER_DATABASE_URL")))
    try:
        keyed = await connection.fetch("SELECT key, response->>'_id' AS order_id FROM idempotency_keys")
        orders = {str(row["id"]) for row in await connection.fetch("SELECT id FROM orders")}
    finally:
        await connection.close()
    inbox_dead = {}
    for variable in ("ORDER_DATABASE_URL", "SAGA_DATABASE_URL", "STOCK_DATABASE_URL"):
        database = await asyncpg.connect(asyncpg_dsn(cluster.database_url(variable)))
        try:
            count = await database.fetchval("SELECT count(*) FROM inbox_dead_letter")
            inbox_dead[variable.split("_")[0].lower()] = count
        finally:
            await database.close()
    lost = accepted - orders
    per_key = Counter(row["key"] for row in keyed)
    unknown = orders - {row["order_id"] for row in keyed}  # placed without a recorded key: none should be
    gave_up = sum(shop.tally.gave_up.values())
    unanswered = orders - accepted  # placed, but the client never learnt it (it gave up on the request)
    keys = Invariant(
        "every order answered 201 exists, once per Idempotency-Key",
        not lost and not unknown and all(n == 1 for n in per_key.values()) and len(unanswered) <= gave_up,
        f"{len(accepted)} answered 201, {len(orders)} in the database, {len(lost)} lost, {len(unknown)} without key,"
        f" {len(unanswered)} never answered (requests given up: {gave_up})",
    )
    dead = Invariant("no inbox dead letter (no poison injected)", not any(inbox_dead.values()), str(inbox_dead))
    return [keys, dead]


async def _orders_by_state(cluster: Cluster) -> dict:
    orders = await asyncpg.connect(asyncpg_dsn(cluster.database_url("ORDER_DATABASE_URL")))
    sagas = await asyncpg.connect(asyncpg_dsn(cluster.database_url("SAGA_DATABASE_URL")))
    try:
        statuses = dict(await orders.fetch("SELECT status, count(*) FROM orders GROUP BY 1 ORDER BY 1"))
        states = dict(await sagas.fetch("SELECT state, count(*) FROM sagas GROUP BY 1 ORDER BY 1"))
    finally:
        await orders.close()
        await sagas.close()
    return {"by_status": statuses, "sagas_by_state": states}
