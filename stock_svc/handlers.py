"""What stock_svc does with the events it consumes: products come and go, and the saga's stock commands.

Each handler runs inside the consumer helper's transaction (which also records the event in the inbox) and
does all its work on that `connection`. The saga's commands for one order apply one transaction at a time: the
consumer's inbox statement takes the order's lock (`lock_key`) before any handler runs.
"""

from tortoise.backends.base.client import BaseDBAsyncClient

from common.consumer import EventConsumer, Handler, ReceivedEvent
from common.messages import CONFIRM_STOCK, PRODUCT_CREATED, PRODUCT_DELETED, RELEASE_STOCK, RESERVE_STOCK
from common.topics import PRODUCT_EVENTS, STOCK_COMMANDS
from stock_svc import inventory, reservations
from stock_svc.inventory import DB
from stock_svc.schemas import OrderCommand, ProductCreated, ProductRef, ReserveCommand
from stock_svc.settings import StockSettings


async def on_product_created(event: ReceivedEvent, connection: BaseDBAsyncClient) -> None:
    product = ProductCreated.model_validate(event.payload)
    await inventory.create_item_for_product(connection, product.id, product.quantity, causation_id=str(event.id))


async def on_product_deleted(event: ReceivedEvent, connection: BaseDBAsyncClient) -> None:
    await inventory.retire_item(connection, ProductRef.model_validate(event.payload).id)


async def on_reserve_stock(event: ReceivedEvent, connection: BaseDBAsyncClient) -> None:
    await reservations.reserve_order(connection, ReserveCommand.model_validate(event.payload), str(event.id))


async def on_release_stock(event: ReceivedEvent, connection: BaseDBAsyncClient) -> None:
    await reservations.release_order(connection, OrderCommand.model_validate(event.payload).order_id, str(event.id))


async def on_confirm_stock(event: ReceivedEvent, connection: BaseDBAsyncClient) -> None:
    await reservations.confirm_order(connection, OrderCommand.model_validate(event.payload).order_id, str(event.id))


def lock_key(event: ReceivedEvent) -> str | None:
    """The lock of the order a saga command is for (stock_svc/reservations.py); other events need none. A payload
    without an order id needs none either: its handler refuses it."""
    if event.topic != STOCK_COMMANDS or not isinstance(event.payload, dict):
        return None
    order_id = event.payload.get("order_id")
    return reservations.order_lock_key(order_id) if isinstance(order_id, str) else None


# product.updated is not handled: a product's quantity field is its initial stock, which inventory now owns.
HANDLERS: dict[str, Handler] = {
    PRODUCT_CREATED: on_product_created,
    PRODUCT_DELETED: on_product_deleted,
    RESERVE_STOCK: on_reserve_stock,
    RELEASE_STOCK: on_release_stock,
    CONFIRM_STOCK: on_confirm_stock,
}


def stock_consumers(settings: StockSettings) -> list[EventConsumer]:
    """The consumer of product events and of the saga's stock commands (not started)."""
    return [
        EventConsumer(
            DB,
            settings.kafka_bootstrap_servers,
            [PRODUCT_EVENTS, STOCK_COMMANDS],
            HANDLERS,
            DB,
            lock_key=lock_key,
            lock_rows=reservations.lock_items_of_commands,
        )
    ]
