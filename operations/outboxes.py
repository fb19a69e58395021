"""Each outbox's figures (outbox_relay/records.py OutboxStats): one statement per PostgreSQL store, a few counts on
the MongoDB one, read side by side; a store that cannot be read is reported as such, not as an error."""

import asyncio
from dataclasses import asdict
from typing import Any

from outbox_relay.outboxes import STORE_ERRORS, OutboxStore


async def outbox_figures(stores: list[OutboxStore]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(_figures(store) for store in stores)))


async def _figures(store: OutboxStore) -> dict[str, Any]:
    try:
        await store.open()
        stats = await store.stats()
    except STORE_ERRORS as error:
        return {"store": store.name, "reachable": False, "error": f"{type(error).__name__}: {error}"}
    per_second = round(stats.published_last_minute / 60, 2)
    return {"store": store.name, "reachable": True, **asdict(stats), "published_per_second": per_second}
