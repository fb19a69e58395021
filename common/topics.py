"""The Kafka topics of the system (DESIGN §4) and their creation.

Topics are created explicitly with a fixed partition count: the broker's auto-creation would pick its own.
Messages are keyed by aggregate id, so one aggregate's events land in one partition, in order. Each partition is
kept on three brokers where the cluster has three or more, and a write counts once two of them have it (the relay
produces with acks=all): one broker can fail without losing or refusing anything.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
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
_INVALID_REPLICATION_FACTOR = 38  # fewer brokers registered than replicas asked for (a cluster still starting)

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


def replication_factor(brokers: int) -> int:
    """Replicas of each partition in a cluster of `brokers`."""
    return min(brokers, 3)


def min_in_sync_replicas(replicas: int) -> int:
    """Replicas that must have a write before it is acknowledged (acks=all): two of three, so that one may fail."""
    return 2 if replicas >= 3 else 1


async def ensure_topics(
    bootstrap_servers: str, topics: tuple[str, ...] = ALL_TOPICS, timeout: float = 30.0, brokers: int | None = None
) -> None:
    """Create the topics that do not exist yet, waiting up to `timeout` s for the broker, then until every partition
    has a leader (so that the first events published find one). `brokers`: the cluster's size, when the caller knows
    it (a cluster still starting may not have registered them all); else the brokers it reports now."""
    admin = await started(lambda: AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers), timeout)
    try:
        async with asyncio.timeout(timeout):
            brokers = brokers or len((await admin.describe_cluster())["brokers"])
            replicas = replication_factor(brokers)
            await _until(lambda: _create_missing(admin, topics, replicas), pause=0.2)
            await _until(lambda: _led(admin, topics), pause=0.1)
    finally:
        await admin.close()


async def _until(ready: Callable[[], Awaitable[bool]], pause: float) -> None:
    while True:
        if await ready():
            return
        await asyncio.sleep(pause)


async def _create_missing(admin: AIOKafkaAdminClient, topics: tuple[str, ...], replicas: int) -> bool:
    """Whether every topic exists now (False: not all the brokers they need have registered yet)."""
    existing = set(await admin.list_topics())
    settings = {"min.insync.replicas": str(min_in_sync_replicas(replicas))}
    missing = [NewTopic(name, PARTITIONS, replicas, topic_configs=settings) for name in topics if name not in existing]
    if not missing:
        return True
    response = await admin.create_topics(missing)
    for name, code, message in response.topic_errors:
        if code == _INVALID_REPLICATION_FACTOR:
            return False
        if code not in (0, _TOPIC_ALREADY_EXISTS):
            raise RuntimeError(f"creating topic {name} failed: {message} (error {code})")
    log.info("created topics %s (%d replicas)", [topic.name for topic in missing], replicas)
    return True


async def _led(admin: AIOKafkaAdminClient, topics: tuple[str, ...]) -> bool:
    described = await admin.describe_topics(list(topics))
    return len(described) == len(topics) and all(
        topic["error_code"] == 0 and partition["leader"] >= 0
        for topic in described
        for partition in topic["partitions"]
    )
