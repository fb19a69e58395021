"""One fetch is applied in one transaction whatever partitions it covers (common/consumer.py), and a poison record
in one partition still leaves every partition's offset past what was done: order_svc's consumer, handed records
as aiokafka returns them."""

import json
import uuid

from aiokafka import ConsumerRecord, TopicPartition
from tortoise import connections

from common.consumer import EventConsumer
from order_svc.handlers import HANDLERS
from order_svc.orders import DB
from tests.order_svc.conftest import price_of

TOPIC = "product-events"
CONSUMER_NAME = "order_svc.tests.fetch"


def product_created(partition: int, offset: int, product_id: str, payload: dict) -> ConsumerRecord:
    event_id = str(uuid.uuid4())
    headers = [(name, value.encode()) for name, value in (("event_id", event_id), ("event_type", "product.created"))]
    value = json.dumps(payload).encode()
    return ConsumerRecord(TOPIC, partition, offset, 0, 0, product_id.encode(), value, None, 0, len(value), headers)


def product(product_id: str, price: float = 10.0) -> dict:
    return {"_id": product_id, "name": f"Product {product_id}", "price": price}


async def test_a_fetch_over_two_partitions_is_one_transaction(client):
    consumer = EventConsumer(CONSUMER_NAME, "127.0.0.1:9", [], HANDLERS, DB)
    first, second = ("6650a1b2c3d4e5f6012345a1", "6650a1b2c3d4e5f6012345a2"), ("6650a1b2c3d4e5f6012345b1",)
    batches = {
        TopicPartition(TOPIC, 0): [product_created(0, 7 + n, id_, product(id_)) for n, id_ in enumerate(first)],
        TopicPartition(TOPIC, 1): [product_created(1, 3, second[0], product(second[0]))],
    }
    assert await consumer.process_fetch(batches) == {TopicPartition(TOPIC, 0): 9, TopicPartition(TOPIC, 1): 4}
    rows = await connections.get(DB).execute_query_dict(
        "SELECT count(*) AS events, count(DISTINCT xmin::text) AS transactions FROM inbox WHERE consumer = $1",
        [CONSUMER_NAME],
    )
    assert rows == [{"events": 3, "transactions": 1}]
    for product_id in (*first, *second):
        assert await price_of(product_id) is not None


async def test_a_poison_record_is_dead_lettered_and_the_other_partition_applied(client):
    consumer = EventConsumer(CONSUMER_NAME, "127.0.0.1:9", [], HANDLERS, DB, max_attempts=2, retry_delay=0.01)
    good, poison = "6650a1b2c3d4e5f6012345c1", "6650a1b2c3d4e5f6012345c2"
    batches = {
        TopicPartition(TOPIC, 2): [product_created(2, 0, poison, {"_id": poison, "price": "not a price"})],
        TopicPartition(TOPIC, 3): [product_created(3, 5, good, product(good, price=12.5))],
    }
    assert await consumer.process_fetch(batches) == {TopicPartition(TOPIC, 2): 1, TopicPartition(TOPIC, 3): 6}
    assert await price_of(good) is not None
    assert await price_of(poison) is None
    dead = await connections.get(DB).execute_query_dict(
        'SELECT partition, "offset", attempts FROM inbox_dead_letter WHERE consumer = $1', [CONSUMER_NAME]
    )
    assert dead == [{"partition": 2, "offset": 0, "attempts": 2}]
