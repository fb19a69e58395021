"""PostgreSQL for a service: its own database, created if missing, migrated at start, then Tortoise ORM.

Each service owns one database and one Tortoise app (its models and migrations). Shared tables such as the
outbox are created by a migration of the service that imports their DDL from this package.
"""

import hashlib
import logging
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from sanic import Sanic
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential
from tortoise import Tortoise, connections
from tortoise.migrations.api.migrate import migrate

log = logging.getLogger(__name__)


def tortoise_config(database_url: str, app_label: str, pool_size: int = 10) -> dict:
    """A Tortoise config with one connection and one app named `app_label` (models in `<app>.models`,
    migrations in `<app>.migrations`)."""
    separator = "&" if "?" in database_url else "?"
    app = {"models": [f"{app_label}.models"], "default_connection": app_label, "migrations": f"{app_label}.migrations"}
    return {
        "connections": {app_label: f"{database_url}{separator}minsize=1&maxsize={pool_size}"},
        "apps": {app_label: app},
        "use_tz": True,
        "timezone": "UTC",
    }


def asyncpg_dsn(database_url: str) -> str:
    """The URL as asyncpg wants it (Tortoise accepts `postgres://` and `asyncpg://`)."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(scheme="postgresql", query=""))


async def ensure_database(database_url: str, timeout: float = 30.0) -> None:
    """Create the service's database if it does not exist, waiting up to `timeout` s for the server."""
    parts = urlsplit(asyncpg_dsn(database_url))
    name = parts.path.lstrip("/")
    maintenance_dsn = urlunsplit(parts._replace(path="/postgres"))
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type((OSError, asyncpg.CannotConnectNowError)),
        wait=wait_exponential(multiplier=0.05, max=1.0),
        stop=stop_after_delay(timeout),
        reraise=True,
    ):
        with attempt:
            connection = await asyncpg.connect(maintenance_dsn)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await connection.execute(f'CREATE DATABASE "{name}"')
                log.info("created database %s", name)
            except asyncpg.DuplicateDatabaseError:
                pass  # another instance of the service created it first
    finally:
        await connection.close()


async def migrate_database(database_url: str, app_label: str) -> None:
    """Apply the app's migrations; an advisory lock lets several instances start at once."""
    lock_key = int.from_bytes(hashlib.sha256(f"migrate:{app_label}".encode()).digest()[:8], "big", signed=True)
    lock_connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await lock_connection.execute("SELECT pg_advisory_lock($1)", lock_key)
        await migrate(config=tortoise_config(database_url, app_label, pool_size=1))
        await Tortoise.close_connections()
    finally:
        await lock_connection.close()


# The databases this process has open. Tortoise holds one global configuration, so opening a database
# re-initialises it with all of them (one per process in production; several when tests host several services).
_open: dict[str, dict] = {}


async def open_database(database_url: str, app_label: str, pool_size: int = 10) -> None:
    """Create, migrate and connect the service's database."""
    await ensure_database(database_url)
    await migrate_database(database_url, app_label)
    await attach(tortoise_config(database_url, app_label, pool_size))


async def attach(config: dict) -> None:
    """Connect the databases of `config` alongside those already open."""
    _open.update({label: config for label in config["apps"]})
    await _init_all()


async def close_database(app_label: str) -> None:
    _open.pop(app_label, None)
    await Tortoise.close_connections()
    if _open:
        await _init_all()


async def _init_all() -> None:
    merged: dict = {"connections": {}, "apps": {}, "use_tz": True, "timezone": "UTC"}
    for config in _open.values():
        merged["connections"].update(config["connections"])
        merged["apps"].update(config["apps"])
    await Tortoise.init(config=merged, _enable_global_fallback=True)


def register_database(app: Sanic, database_url: str, app_label: str, pool_size: int = 10) -> None:
    """Open the database before the server starts and close it after it stops; `/ready` checks it."""
    app.ctx.readiness_checks["database"] = lambda: database_reachable(app_label)

    @app.before_server_start
    async def open_orm(app: Sanic) -> None:
        await open_database(database_url, app_label, pool_size)

    @app.after_server_stop
    async def close_orm(app: Sanic) -> None:
        await close_database(app_label)


async def database_reachable(app_label: str) -> bool:
    try:
        await connections.get(app_label).execute_query("SELECT 1")
    except Exception:
        return False
    return True
