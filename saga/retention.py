"""What the saga purges (common/retention.py): the steps and the message log of sagas that ended (COMPLETED,
REJECTED, CANCELLED, EXPIRED) longer ago than the retention. The saga row stays: it is the order's outcome."""

from datetime import timedelta

from common.retention import Purge

_ENDED = "SELECT order_id FROM sagas WHERE state IN ('COMPLETED', 'REJECTED', 'CANCELLED', 'EXPIRED')"


def saga_purges(history_retention_days: float) -> list[Purge]:
    retention = timedelta(days=history_retention_days)
    return [
        Purge(
            table,
            f"DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table}"
            f" WHERE saga_id IN ({_ENDED} AND updated_at < now() - $1::interval) LIMIT $2)",
            retention,
        )
        for table in ("saga_steps", "saga_messages")
    ]
