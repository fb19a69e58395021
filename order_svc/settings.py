from pydantic import AliasChoices, Field

from common.settings import ServiceSettings


class OrderSettings(ServiceSettings):
    database_url: str = Field(
        "postgres://postgres@127.0.0.1:5432/orders", validation_alias=AliasChoices("ORDER_DATABASE_URL")
    )
    # Seconds an order may stay pending before its order.placed is published again (order_svc/reconciler.py):
    # longer than the saga's PAYMENT_TIMEOUT, after which no saga leaves an order pending.
    orphan_after: float = Field(1200.0, gt=0)
    orphan_check_interval: float = Field(60.0, gt=0)  # seconds between looks for orphaned orders (one query each)
    idempotency_key_retention_hours: float = Field(24.0, gt=0)  # how long an Idempotency-Key's answer is kept
