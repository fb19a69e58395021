"""PostgreSQL for a service: its own database, created if missing, migrated at start, then Tortoise ORM.

Each service owns one database and one Tortoise app (its models and migrations). Shared tables such as the
outbox are created by a migration of the service that imports their DDL from this package.
"""

import hashlib
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from sanic import Sanic
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential
from tortoise import Tortoise, connections
from tortoise.backends.base.client import TransactionContextPooled
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.connection import get_connections
from tortoise.exceptions import DBConnectionError, TransactionManagementError
from tortoise.migrations.api.migrate import migrate

log = logging.getLogger(__name__)


# Marks a statement, at the start of its text, as planned anew for each execution's values (PooledConnection.fetch).
# asyncpg prepares a statement once per connection, and after five executions PostgreSQL plans it once for all values
# and keeps that generic plan until autovacuum next analyses its tables (about once a minute per database). A
# statement prepared right after start, on a table of a few rows, gets a plan that scans the whole table; a lookup by
# id through a growing table needs the mark. Seen with auto_explain at 200 orders/s: the saga's lock of a batch's
# sagas by id scanned every saga (5 ms a batch at 10,000 sagas), stock's batch lock every reservation. Only `fetch`
# honours the mark (Tortoise's execute_query and execute_query_dict call it; fetchrow and execute do not).
PLANNED_PER_EXECUTION = "/* planned per execution */"

# A connection of its own, or one a pool lends (asyncpg's proxy of it): what a function that runs statements takes.
PgConnection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


# The database cannot serve now: unreachable, going down or coming up (OperatorInterventionError: "terminating
# connection due to administrator command", "the database system is shutting down / starting up"), or out of
# resources (class 53: too many connections, disk full, out of memory). asyncpg's InternalClientError ("another
# operation is in progress") is a pooled connection that PostgreSQL terminated in the middle of an operation (seen in
# failure scenario 7). It is the server's state, never the request's or the event's: a consumer waits instead of
# dead-lettering the event, and an HTTP request is answered 503 (common/errors.py), not 500.
_UNAVAILABLE = (
    OSError,
    DBConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def caused_by(error: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether `error`, or an error it was raised from (the ORM wraps the driver's), is one of `kinds`."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def database_unavailable(error: BaseException) -> bool:
    """Whether `error` says that the database cannot serve now (see _UNAVAILABLE), rather than anything about what
    was asked of it."""
    return caused_by(error, _UNAVAILABLE)


class PooledConnection(asyncpg.Connection):
    """A pooled connection that goes back to the pool without a reset query. asyncpg's default (unlock advisory
    locks, close cursors, unlisten, reset settings) is one more round trip per transaction and per query, for
    session state the services never create: their locks are transaction-scoped, their settings `SET LOCAL`, and
    LISTEN and session locks live on connections of their own. An open transaction is still rolled back.

    A query that begins with PLANNED_PER_EXECUTION is prepared for this execution alone, so PostgreSQL plans it for
    these values (a new prepared statement's first executions get plans of their own): one round trip more."""

    def get_reset_query(self) -> str:
        return ""

    async def fetch(self, query: str, *args: Any, timeout: float | None = None, **options: Any) -> list[Any]:
        if query.startswith(PLANNED_PER_EXECUTION):
            statement = await self.prepare(query, timeout=timeout, **options)
            rows: list[Any] = await statement.fetch(*args, timeout=timeout)
            return rows
        rows = await super().fetch(query, *args, timeout=timeout, **options)
        return rows


def tortoise_config(database_url: str, app_label: str, pool_size: int = 10) -> dict:
    """A Tortoise config with one connection and one app named `app_label` (models in `<app>.models`,
    migrations in `<app>.migrations`)."""
    connection = expand_db_url(database_url)
    connection["credentials"].update(minsize=1, maxsize=pool_size, connection_class=PooledConnection)
    app = {"models": [f"{app_label}.models"], "default_connection": app_label, "migrations": f"{app_label}.migrations"}
    return {
        "connections": {app_label: connection},
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
        # Instances starting together take turns: two CREATE DATABASE of one name at once fail on pg_database's
        # unique index (UniqueViolationError), not with DuplicateDatabaseError. The lock ends with the session.
        await connection.execute("SELECT pg_advisory_lock($1)", _lock_key(f"create-database:{name}"))
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await connection.execute(f'CREATE DATABASE "{name}"')
            log.info("created database %s", name)
    finally:
        await connection.close()


def _lock_key(name: str) -> int:
    """A PostgreSQL advisory lock key (bigint) for `name`."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def migrate_database(database_url: str, app_label: str) -> None:
    """Apply the app's migrations; an advisory lock lets several instances start at once."""
    lock_key = _lock_key(f"migrate:{app_label}")
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


# --- tortoise-orm 1.1.9: a transaction's context must be undone whatever fails ----------------------------------
# Tortoise keeps the open transaction in a context variable. When BEGIN fails (the server went away between taking a
# pooled connection and BEGIN), or releasing the connection fails at the end, the original methods leave that
# variable set: every later query of the same task then runs on the dead connection ("connection is closed",
# "connection has been released back to the pool"), for good. The tasks that live long are those that matter: a
# consumer's, the saga's deadline timer, and Sanic's task per keep-alive connection, which serves every request
# that arrives on it. These two replacements always reset the variable and give the connection back.


async def _begin(self: TransactionContextPooled) -> Any:
    await self.ensure_connection()
    pool = self.client._parent._pool
    self.client._connection = await pool.acquire()
    self.token = get_connections().set(self.connection_name, self.client)
    try:
        await self.client.begin()
    except BaseException:
        get_connections().reset(self.token)
        await _give_back(pool, self.client._connection)
        raise
    return self.client


async def _end(self: TransactionContextPooled, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
    try:
        if not self.client._finalized:
            if exc_type:
                if exc_type is not TransactionManagementError:  # can't roll back a transaction that already failed
                    await self.client.rollback()
            else:
                await self.client.commit()
    finally:
        get_connections().reset(self.token)
        if self.client._parent._pool:
            await _give_back(self.client._parent._pool, self.client._connection)


async def _give_back(pool: asyncpg.Pool, connection: Any) -> None:
    try:
        await pool.release(connection)
    except Exception:  # a broken connection: the pool replaces it
        log.debug("releasing a broken connection failed", exc_info=True)


TransactionContextPooled.__aenter__ = _begin  # type: ignore[method-assign]
TransactionContextPooled.__aexit__ = _end  # type: ignore[method-assign]
