"""order_svc's purges: Idempotency-Keys older than their retention (a key sent again after that places a new
order), and the inbox's records older than theirs; younger ones stay."""

from tortoise import connections

from common.idempotency import idempotency_purge
from common.retention import inbox_purge, purge
from order_svc.orders import DB
from tests.order_svc.conftest import ORDERS, SMARTPHONE, item, order_body


async def test_old_keys_and_inbox_records_are_purged(client, customer):
    for key in ("old", "new"):
        response = await client.post(
            f"{ORDERS}/", json=order_body(item(SMARTPHONE)), headers={**customer, "Idempotency-Key": key}
        )
        assert response.status_code == 201
    database = connections.get(DB)
    await database.execute_query(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old'"
    )
    await database.execute_query("UPDATE inbox SET processed_at = now() - interval '15 days'")  # the catalog's events
    inbox_before = (await database.execute_query_dict("SELECT count(*) AS n FROM inbox"))[0]["n"]

    deleted = await purge(DB, [inbox_purge(14), idempotency_purge(24)])
    assert deleted == {"inbox": inbox_before, "idempotency_keys": 1}
    keys = await database.execute_query_dict("SELECT key FROM idempotency_keys")
    assert [row["key"] for row in keys] == ["new"]
    again = await client.post(
        f"{ORDERS}/", json=order_body(item(SMARTPHONE)), headers={**customer, "Idempotency-Key": "old"}
    )
    assert "Idempotent-Replayed" not in again.headers  # a new order: the key was forgotten
