"""Retention: every table that grows with traffic is purged, by the service that owns it, of the rows nothing needs
any more. Each `Purge` is a DELETE of at most `$2` rows older than `$1` (an interval) that keeps what is still
needed; it runs again until it deletes fewer, so that no purge holds locks or bloats WAL for long.

A row that lets a consumer recognise a message (the inbox, stock's applied commands) must outlive the message on
the broker, or a consumer that reads a partition again from its start (common/consumer.py) would apply it again:
their retention defaults to 14 days, twice Kafka's default of 7.
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import Counter
from sanic import Sanic
from tortoise import connections

from common.service import run_in_background

log = logging.getLogger(__name__)

BATCH = 5000  # rows per DELETE


@dataclass(frozen=True)
class Purge:
    table: str  # named in the log and the metric
    statement: str  # DELETE ... $1: the retention (interval), $2: at most this many rows
    retention: timedelta


def inbox_purge(retention_days: float) -> Purge:
    """The inbox's records of events applied, older than the retention (see above)."""
    return Purge(
        "inbox",
        "DELETE FROM inbox WHERE ctid IN (SELECT ctid FROM inbox WHERE processed_at < now() - $1::interval LIMIT $2)",
        timedelta(days=retention_days),
    )


async def purge(database: str, purges: list[Purge], batch: int = BATCH) -> dict[str, int]:
    """Run each purge until it has deleted everything it may; rows deleted per table."""
    deleted: dict[str, int] = {}
    for each in purges:
        deleted[each.table] = 0
        while True:
            count, _ = await connections.get(database).execute_query(each.statement, [each.retention, batch])
            deleted[each.table] += count
            if count < batch:
                break
    return deleted


def register_purges(app: Sanic, database: str, purges: list[Purge], interval: float) -> None:
    """Purge every `interval` s while the service runs (every instance does; they delete the same rows)."""
    purged = Counter(
        "rows_purged_total", "Rows deleted by retention, by table", ["table"], registry=app.ctx.metrics.registry
    )

    async def keep_purging() -> None:
        while True:
            try:
                for table, count in (await purge(database, purges)).items():
                    purged.labels(table).inc(count)
                    if count:
                        log.info("purged %d rows of %s", count, table)
            except Exception as error:  # the database away: the next round tries again
                log.warning("purging failed: %r", error)
            await asyncio.sleep(interval)

    run_in_background(app, "purges", keep_purging)
