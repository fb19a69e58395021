"""Orphans: orders still `pending` long after any saga would have settled them (paid, cancelled at its payment
deadline, or rejected). Their `order.placed` never reached a saga: set aside as a dead letter, lost with a topic
recreated, or a saga database restored from before it. Every ORPHAN_CHECK_INTERVAL s, each such order gets its
`order.placed` published again, at most once per ORPHAN_AFTER s. The saga starts one saga per order whatever the
number of copies (saga/orchestrator.py), so a copy that finds its saga changes nothing.

ORPHAN_AFTER must exceed the saga's PAYMENT_TIMEOUT, or orders still awaiting payment would be counted."""

import asyncio
import logging
from datetime import timedelta

from prometheus_client import Counter
from sanic import Sanic
from tortoise.timezone import now
from tortoise.transactions import in_transaction

from common.outbox import write_events
from common.service import run_in_background
from order_svc.models import Order, OrderItem
from order_svc.orders import DB, order_placed

log = logging.getLogger(__name__)

# The pending orders older than $1 not published again in the last $1, oldest first, locked so that two instances
# do not publish one twice (SKIP LOCKED: each takes others). The partial index holds the pending orders only.
_ORPHANS = """
SELECT id FROM orders
WHERE status = 'pending' AND created_at < now() - $1::interval
  AND (placed_again_at IS NULL OR placed_again_at < now() - $1::interval)
ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
"""


async def republish_orphans(after: timedelta, batch: int = 100) -> int:
    """Publish `order.placed` again for up to `batch` orphans; how many."""
    async with in_transaction(DB) as connection:
        rows = await connection.execute_query_dict(_ORPHANS, [after, batch])
        ids = [row["id"] for row in rows]
        if not ids:
            return 0
        orders = await Order.filter(id__in=ids).using_db(connection)
        items = await OrderItem.filter(order_id__in=ids).order_by("id").using_db(connection)
        by_order: dict = {}
        for item in items:
            by_order.setdefault(item.order_id, []).append(item)  # type: ignore[attr-defined]
        await Order.filter(id__in=ids).using_db(connection).update(placed_again_at=now())
        await write_events(connection, [order_placed(order, by_order.get(order.id, [])) for order in orders])
    log.warning("orders pending for over %s with no saga progress; order.placed published again: %s", after, ids)
    return len(ids)


def register_orphan_reconciler(app: Sanic, after: float, interval: float) -> None:
    reconciled = Counter(
        "orders_reconciled_total",
        "Orders found pending past ORPHAN_AFTER whose order.placed was published again",
        registry=app.ctx.metrics.registry,
    )

    async def keep_reconciling() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                reconciled.inc(await republish_orphans(timedelta(seconds=after)))
            except Exception as error:  # the database away: the next round tries again
                log.warning("looking for orphaned orders failed: %r", error)

    run_in_background(app, "orphan_reconciler", keep_reconciling)
