"""The read model of stock_svc's available quantities, kept from stock-updated: an order for more than the known
stock is refused when it is placed (order_svc/orders.py), before the saga would reject it.

The view lags stock_svc by an event hop (tens of milliseconds): in that window it can let through an order that the
saga then rejects, or refuse an order for a product just restocked. A product with no stock event yet is not
refused. One product's events share a partition, so they arrive in order; the time check guards against an event
that comes back later (a replay, a re-driven dead letter): an older level never overwrites a newer one.
"""

from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

# One statement for a whole fetched batch (every stock change of every order sends one event per product),
# upserted set-based.
_RECORD_LEVELS = """
INSERT INTO stock_levels (product_id, available, updated_at)
SELECT * FROM unnest($1::text[], $2::int[], $3::timestamptz[])
ON CONFLICT (product_id) DO UPDATE SET available = EXCLUDED.available, updated_at = EXCLUDED.updated_at
    WHERE stock_levels.updated_at <= EXCLUDED.updated_at
"""


async def record_stock_levels(connection: BaseDBAsyncClient, levels: list[tuple[str, int, datetime]]) -> None:
    """(product id, available, as of) in partition order: for each product the last one counts, unless the read
    model already holds a later level."""
    latest = {product_id: (available, moment) for product_id, available, moment in levels}
    await connection.execute_query(
        _RECORD_LEVELS,
        [list(latest), [available for available, _ in latest.values()], [moment for _, moment in latest.values()]],
    )
