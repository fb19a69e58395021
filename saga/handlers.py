"""The saga's consumer: order events and stock's replies, through the idempotent consumer helper."""

from collections.abc import Awaitable, Callable

from tortoise.backends.base.client import BaseDBAsyncClient

from common.consumer import EventConsumer, ForBatches, Handler, ReceivedEvent
from common.messages import (
    ORDER_CANCELLED,
    ORDER_PAID,
    ORDER_PLACED,
    STOCK_CONFIRMED,
    STOCK_REJECTED,
    STOCK_RELEASED,
    STOCK_RESERVED,
)
from common.topics import ORDER_EVENTS, STOCK_REPLIES
from saga.orchestrator import Orchestrator
from saga.settings import SagaSettings

DB = "saga"


def consumers(settings: SagaSettings, orchestrator: Orchestrator) -> list[EventConsumer]:
    def on(method: Callable[[BaseDBAsyncClient, str, ReceivedEvent], Awaitable[None]]) -> Handler:
        """An orchestrator method taking (connection, order_id, cause) as a handler."""

        async def handle(event: ReceivedEvent, connection: BaseDBAsyncClient) -> None:
            await method(connection, event.payload["order_id"], event)

        return handle

    async def placed(events: list[ReceivedEvent], connection: BaseDBAsyncClient) -> None:
        await orchestrator.orders_placed(connection, [(event.payload, event) for event in events])

    async def reserved(events: list[ReceivedEvent], connection: BaseDBAsyncClient) -> None:
        await orchestrator.stocks_reserved(connection, [(event.payload["order_id"], event) for event in events])

    async def rejected(event: ReceivedEvent, connection: BaseDBAsyncClient) -> None:
        await orchestrator.stock_rejected(connection, event.payload, event)

    return [
        EventConsumer(
            DB,
            topics=[ORDER_EVENTS, STOCK_REPLIES],
            handlers={
                ORDER_PLACED: ForBatches(placed),  # the two events of every order: moved in bulk
                ORDER_PAID: on(orchestrator.order_paid),
                ORDER_CANCELLED: on(orchestrator.order_cancelled),
                STOCK_RESERVED: ForBatches(reserved),
                STOCK_REJECTED: rejected,
                STOCK_RELEASED: on(orchestrator.stock_released),
                STOCK_CONFIRMED: on(orchestrator.stock_confirmed),
            },
            bootstrap_servers=settings.kafka_bootstrap_servers,
            database=DB,
        ),
    ]
