"""A consumer is ready only once it has joined its group and owns its partitions, so that a service's /ready
means its first event is handled as fast as the later ones."""

import uuid

from aiokafka import TopicPartition

from common.consumer import EventConsumer
from common.topics import PARTITIONS, ensure_topics
from tests.support import wait_until


async def test_ready_only_with_its_partitions_assigned(kafka_bootstrap: str) -> None:
    topic = f"readiness-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, (topic,))
    consumer = EventConsumer(f"readiness-{topic}", kafka_bootstrap, [topic], {}, database="unused")
    await consumer.start()
    try:
        await wait_until(lambda: _ready(consumer), timeout=60)
        assert consumer._kafka is not None
        assert consumer._kafka.assignment() == {TopicPartition(topic, p) for p in range(PARTITIONS)}
    finally:
        await consumer.stop()
    assert not consumer.ready


async def _ready(consumer: EventConsumer) -> bool:
    return consumer.ready
