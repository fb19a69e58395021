"""What stock_svc purges (common/retention.py): the record of the saga's commands applied (kept as long as the
inbox: a command read again must find it), and the history of reservations, keeping every supply (creation,
update, adjustment: the stock they add up to) and each item's latest row (its current quantities)."""

from datetime import timedelta

from common.retention import Purge


def stock_purges(command_retention_days: float, history_retention_days: float) -> list[Purge]:
    return [
        Purge(
            "handled_commands",
            "DELETE FROM handled_commands WHERE ctid IN"
            " (SELECT ctid FROM handled_commands WHERE handled_at < now() - $1::interval LIMIT $2)",
            timedelta(days=command_retention_days),
        ),
        Purge(
            "stock_history",
            "DELETE FROM stock_history WHERE ctid IN (SELECT h.ctid FROM stock_history AS h"
            " WHERE h.created_at < now() - $1::interval AND h.type IN ('reserved', 'released', 'confirmed')"
            " AND h.id < (SELECT max(latest.id) FROM stock_history AS latest WHERE latest.item_id = h.item_id)"
            " LIMIT $2)",
            timedelta(days=history_retention_days),
        ),
    ]
