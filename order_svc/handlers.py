"""What order_svc does with the events it consumes: the catalog's products (prices), stock_svc's available
quantities and the saga's verdicts.

Each handler runs inside the consumer helper's transaction (which also records the event in the inbox) and
does all its work on that `connection`.
"""

from datetime import UTC, datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from common.consumer import EventConsumer, ForBatches, Handler, ReceivedEvent
from common.messages import (
    PRODUCT_CREATED,
    PRODUCT_DELETED,
    PRODUCT_UPDATED,
    SAGA_EXPIRED,
    SAGA_REJECTED,
    STOCK_UPDATED,
)
from common.topics import PRODUCT_EVENTS, SAGA_EVENTS, STOCK_UPDATES
from order_svc import orders, prices, stock_levels
from order_svc.orders import DB
from order_svc.schemas import ProductEvent, SagaExpired, SagaRejected, StockUpdated
from order_svc.settings import OrderSettings


def changed_at(event: ReceivedEvent) -> datetime:
    """When the change happened, as the envelope says; the time of receipt when it does not say (clearly)."""
    try:
        moment = datetime.fromisoformat(event.occurred_at or "")
    except ValueError:
        return datetime.now(UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def on_product_changed(event: ReceivedEvent, connection: BaseDBAsyncClient) -> None:
    product = ProductEvent.model_validate(event.payload)
    await prices.record_product(connection, product, deleted=False, changed_at=changed_at(event))


async def on_product_deleted(event: ReceivedEvent, connection: BaseDBAsyncClient) -> None:
    product = ProductEvent.model_validate(event.payload)
    await prices.record_product(connection, product, deleted=True, changed_at=changed_at(event))


async def on_stock_updated(events: list[ReceivedEvent], connection: BaseDBAsyncClient) -> None:
    levels = []
    for event in events:
        level = StockUpdated.model_validate(event.payload)
        levels.append((level.product_id, level.stock, changed_at(event)))
    await stock_levels.record_stock_levels(connection, levels)


async def on_saga_rejected(event: ReceivedEvent, connection: BaseDBAsyncClient) -> None:
    verdict = SagaRejected.model_validate(event.payload)
    await orders.reject_order(connection, verdict.order_id, verdict.reason, causation_id=str(event.id))


async def on_saga_expired(event: ReceivedEvent, connection: BaseDBAsyncClient) -> None:
    verdict = SagaExpired.model_validate(event.payload)
    await orders.expire_order(connection, verdict.order_id, causation_id=str(event.id))


# stock.low is not handled: stock.updated carries every level.
HANDLERS: dict[str, Handler | ForBatches] = {
    PRODUCT_CREATED: on_product_changed,
    PRODUCT_UPDATED: on_product_changed,
    PRODUCT_DELETED: on_product_deleted,
    SAGA_REJECTED: on_saga_rejected,
    SAGA_EXPIRED: on_saga_expired,
    STOCK_UPDATED: ForBatches(on_stock_updated),
}


def order_consumers(settings: OrderSettings) -> list[EventConsumer]:
    """The consumer of product events, stock levels and the saga's verdicts (not started)."""
    return [
        EventConsumer(
            DB,
            settings.kafka_bootstrap_servers,
            [PRODUCT_EVENTS, STOCK_UPDATES, SAGA_EVENTS],
            HANDLERS,
            DB,
        )
    ]
