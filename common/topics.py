"""The Kafka topics of the system (DESIGN §4) and their creation.

Topics are created explicitly with a fixed partition count: the broker's auto-creation would pick its own.
Messages are keyed by aggregate id, so one aggregate's events land in one partition, in order.
"""

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

log = logging.getLogger(__name__)

USER_EVENTS = "user-events"  # user.created
PRODUCT_EVENTS = "product-topic"  # product.created / product.updated / product.deleted (the seed's name)
STOCK_UPDATES = "stock-updated"  # stock.updated / stock.low (the seed's name)
ORDER_EVENTS = "order-events"  # order.placed / order.paid / order.cancelled / order.rejected
STOCK_COMMANDS = "stock-commands"  # saga -> stock: reserve / release / confirm, keyed by order id
STOCK_REPLIES = "stock-replies"  # stock -> saga: reserved / rejected / released / confirmed
SAGA_EVENTS = "saga-events"  # saga -> order_svc: saga.rejected / saga.expired

ALL_TOPICS = (USER_EVENTS, PRODUCT_EVENTS, STOCK_UPDATES, ORDER_EVENTS, STOCK_COMMANDS, STOCK_REPLIES, SAGA_EVENTS)
PARTITIONS = 4

_TOPIC_ALREADY_EXISTS = 36

Client = TypeVar("Client", bound=Any)


async def started(make_client: Callable[[], Client], timeout: float = 30.0) -> Client:
    """A started aiokafka client (producer, consumer, admin), waiting up to `timeout` s for the broker: the
    processes of a stack start together, and the broker may not listen yet."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type((KafkaConnectionError, OSError)),
        wait=wait_exponential(multiplier=0.1, max=1.0),
        stop=stop_after_delay(timeout),
        reraise=True,
    ):
        with attempt:
            client = make_client()
            try:
                await client.start()
            except BaseException:
                release = client.close if isinstance(client, AIOKafkaAdminClient) else client.stop
                await release()
                raise
    return client


async def ensure_topics(bootstrap_servers: str, topics: tuple[str, ...] = ALL_TOPICS, timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet, waiting up to `timeout` s for the broker."""
    admin = await started(lambda: AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers), timeout)
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, PARTITIONS, 1) for name in topics if name not in existing]
        if missing:
            response = await admin.create_topics(missing)
            for name, code, message in response.topic_errors:
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"creating topic {name} failed: {message} (error {code})")
            log.info("created topics %s", [topic.name for topic in missing])
    finally:
        await admin.close()
