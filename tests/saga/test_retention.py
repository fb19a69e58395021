"""The saga's purge (saga/retention.py): the steps and message log of sagas that ended longer ago than the
retention go; those of sagas still running, or ended recently, stay, and so does every saga row."""

from tortoise import connections

from common.retention import purge
from saga.retention import saga_purges
from tests.saga.conftest import orchestrator, place, run, stock_reserved


async def counts() -> dict[str, int]:
    found = {}
    for table in ("sagas", "saga_steps", "saga_messages"):
        rows = await connections.get("saga").execute_query_dict(f"SELECT count(*) AS n FROM {table}")
        found[table] = rows[0]["n"]
    return found


async def test_only_sagas_that_ended_long_ago_lose_their_history(client):
    saga = orchestrator()
    ended_long_ago, waiting_long, ended_now = await place(saga), await place(saga), await place(saga)
    for order_id in (ended_long_ago, ended_now):
        await run(saga.stock_rejected, {"order_id": order_id, "reason": "insufficient stock"})
        await run(saga.stock_released, order_id)
    await run(stock_reserved(saga), waiting_long)
    await connections.get("saga").execute_query(
        "UPDATE sagas SET updated_at = now() - interval '31 days' WHERE order_id = ANY($1::uuid[])",
        [[ended_long_ago, waiting_long]],
    )
    before = await counts()

    deleted = await purge("saga", saga_purges(30))
    assert deleted == {"saga_steps": 2, "saga_messages": 6}  # reserve + release; 3 received, 3 sent
    after = await counts()
    assert after == {
        "sagas": 3,
        "saga_steps": before["saga_steps"] - 2,
        "saga_messages": before["saga_messages"] - 6,
    }
    remaining = await connections.get("saga").execute_query_dict("SELECT DISTINCT saga_id::text FROM saga_steps")
    assert {row["saga_id"] for row in remaining} == {waiting_long, ended_now}
