"""A statement marked PLANNED_PER_EXECUTION (common/database.py) is planned for each execution's values: prepared
while its table was small, it still finds rows through the index once the table has grown, where an unmarked one
keeps the plan made for the small table until autovacuum analyses it again."""

import asyncpg
import pytest

from common.database import PLANNED_PER_EXECUTION, PooledConnection, asyncpg_dsn, ensure_database

LOCK_SAGAS = "SELECT * FROM sagas WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"
_SCANS = "SELECT seq_scan, idx_scan FROM pg_stat_xact_all_tables WHERE relid = 'sagas'::regclass"


@pytest.fixture
async def plans_url(postgres_url: str) -> str:
    url = f"{postgres_url}/plans"
    await ensure_database(url)
    return url


async def scans_after_growth(database_url: str, statement: str) -> dict[str, int]:
    """Sequential and index scans of `sagas` by `statement` (a lookup by primary key), run ten times on a table of a
    few rows (analysed), then once the table holds 20,000 more: as the services' hot statements meet their tables,
    prepared right after start."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url), connection_class=PooledConnection)
    try:
        await connection.execute("CREATE TEMP TABLE sagas (id uuid PRIMARY KEY, state text NOT NULL)")
        await connection.execute("INSERT INTO sagas SELECT gen_random_uuid(), 'STARTED' FROM generate_series(1, 60)")
        await connection.execute("ANALYZE sagas")
        for _ in range(10):
            await connection.fetch(statement, [])
        await connection.execute(
            "INSERT INTO sagas SELECT gen_random_uuid(), 'AWAITING_PAYMENT' FROM generate_series(1, 20000)"
        )
        async with connection.transaction():  # the table's scans by this transaction alone
            ids = [row["id"] for row in await connection.fetch("SELECT id FROM sagas OFFSET 100 LIMIT 3")]
            before = await connection.fetchrow(_SCANS)
            await connection.fetch(statement, ids)
            after = await connection.fetchrow(_SCANS)
        return {kind: after[kind] - before[kind] for kind in ("seq_scan", "idx_scan")}
    finally:
        await connection.close()


async def test_a_statement_planned_per_execution_uses_the_index_once_its_table_grew(plans_url: str) -> None:
    scans = await scans_after_growth(plans_url, f"{PLANNED_PER_EXECUTION} {LOCK_SAGAS}")
    assert scans["seq_scan"] == 0 and scans["idx_scan"] > 0, scans


async def test_an_unmarked_statement_keeps_the_plan_made_for_the_small_table(plans_url: str) -> None:
    """Why the mark exists: the generic plan made for 60 rows scans all 20,060."""
    scans = await scans_after_growth(plans_url, LOCK_SAGAS)
    assert scans["seq_scan"] == 1 and scans["idx_scan"] == 0, scans
