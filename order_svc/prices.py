"""The read model of the catalog's prices, kept from product-topic: what an order may be placed at.

One product's events share a partition, so they arrive in order. The time check guards against an event that
comes back later (a replay, a re-driven dead letter): an older state never overwrites a newer one, and a deleted
product stays deleted (the catalog never reuses an id).
"""

from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from order_svc.schemas import ProductEvent

# One statement, so that concurrent deliveries of one product (a partition moving between instances) cannot
# interleave between a read and a write.
_RECORD_PRODUCT = """
INSERT INTO product_prices (product_id, name, price, deleted, updated_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (product_id) DO UPDATE
    SET name = EXCLUDED.name, price = EXCLUDED.price, deleted = EXCLUDED.deleted, updated_at = EXCLUDED.updated_at
    WHERE NOT product_prices.deleted AND product_prices.updated_at <= EXCLUDED.updated_at
"""


async def record_product(
    connection: BaseDBAsyncClient, product: ProductEvent, deleted: bool, changed_at: datetime
) -> None:
    """The product's name and price as of `changed_at`, unless the read model already holds a later state."""
    await connection.execute_query(_RECORD_PRODUCT, [product.id, product.name, product.price, deleted, changed_at])
