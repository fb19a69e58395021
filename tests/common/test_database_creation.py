"""Several instances of every service starting at once on an empty PostgreSQL server (STACK_SCALE=2 on a fresh
DATA_DIR): each creates its database if it is missing and applies its migrations, and none fails because another
did the same at the same moment. Each instance is a process of its own, as in the stack (Tortoise's configuration
is global to a process)."""

import asyncio
import sys
import uuid

import asyncpg

from common.database import asyncpg_dsn
from tests.cluster import ROOT

APPS = ("user_svc", "stock_svc", "order_svc", "saga")
INSTANCES = 2

# What common.database.open_database does before it connects.
START = """
import asyncio, sys
from common.database import ensure_database, migrate_database
async def start(url, app):
    await ensure_database(url)
    await migrate_database(url, app)
asyncio.run(start(sys.argv[1], sys.argv[2]))
"""


async def start_instance(url: str, app: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        START,
        url,
        app,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode, output.decode(errors="replace")


async def test_instances_create_and_migrate_their_databases_at_once(postgres_url: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    urls = {app: f"{postgres_url}/{app}_{suffix}" for app in APPS}

    outcomes = await asyncio.gather(*(start_instance(urls[app], app) for app in APPS for _ in range(INSTANCES)))

    assert [code for code, _ in outcomes] == [0] * len(outcomes), [output for code, output in outcomes if code]
    for app, url in urls.items():
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            names = [row["name"] for row in await connection.fetch("SELECT name FROM tortoise_migrations")]
            assert names and len(names) == len(set(names)), f"{app}: migrations recorded {names}"
            assert await connection.fetchval("SELECT to_regclass('outbox') IS NOT NULL"), f"{app}: no outbox table"
        finally:
            await connection.close()
