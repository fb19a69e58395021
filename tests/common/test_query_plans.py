"""Service connections plan every execution for its parameters (common/database.py SERVER_SETTINGS): a statement
prepared while its table was small still finds rows through the index once the table has grown."""

import asyncpg

from common.database import asyncpg_dsn, ensure_database, tortoise_config


async def plan_after_growth(database_url: str, server_settings: dict[str, str]) -> str:
    """The plan a lookup by primary key, prepared and run ten times on a table of a few rows (analysed), gets once
    the table holds 20,000 more (as the services' hot statements meet their tables: prepared right after start)."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url), server_settings=server_settings)
    try:
        await connection.execute("CREATE TEMP TABLE sagas (id uuid PRIMARY KEY, state text NOT NULL)")
        await connection.execute("INSERT INTO sagas SELECT gen_random_uuid(), 'STARTED' FROM generate_series(1, 60)")
        await connection.execute("ANALYZE sagas")
        await connection.execute(
            "PREPARE lock_sagas (uuid[]) AS SELECT * FROM sagas WHERE id = ANY($1) ORDER BY id FOR UPDATE"
        )
        for _ in range(10):
            await connection.execute("EXECUTE lock_sagas (ARRAY[gen_random_uuid(), gen_random_uuid()])")
        await connection.execute(
            "INSERT INTO sagas SELECT gen_random_uuid(), 'AWAITING_PAYMENT' FROM generate_series(1, 20000)"
        )
        rows = await connection.fetch("EXPLAIN EXECUTE lock_sagas (ARRAY[gen_random_uuid(), gen_random_uuid()])")
        return "\n".join(row[0] for row in rows)
    finally:
        await connection.close()


async def test_a_statement_prepared_on_a_small_table_uses_the_index_once_it_grew(postgres_url: str) -> None:
    url = f"{postgres_url}/plans"
    await ensure_database(url)
    settings = tortoise_config(url, "plans")["connections"]["plans"]["credentials"]["server_settings"]
    plan = await plan_after_growth(url, settings)
    assert "sagas_pkey" in plan and "Seq Scan" not in plan, plan


async def test_by_default_the_plan_made_on_the_small_table_stays(postgres_url: str) -> None:
    """Why the setting exists: without it, the generic plan made on the small table scans all 20,060 rows until
    autovacuum analyses the table again."""
    url = f"{postgres_url}/plans"
    await ensure_database(url)
    plan = await plan_after_growth(url, {})
    assert "Seq Scan on sagas" in plan, plan
