"""Consumer lag read from the broker: for every consumer group, each partition of the topics it commits on, its
committed offset and the log's end. (Each consumer also exports the lag it sees as a metric; this is the broker's
view, which holds for a consumer that is stopped, frozen or gone.)"""

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from common.topics import started

CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int  # the group's committed offset (0 if it never committed on this partition)
    end: int  # the offset the next message will get

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


async def consumer_lag(bootstrap_servers: str) -> list[PartitionLag]:
    """Every group's lag on every partition of the topics it has committed offsets for."""
    admin = await started(lambda: AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers), CONNECT_TIMEOUT)
    try:
        groups = sorted(group for group, _protocol in await admin.list_consumer_groups())
        committed = {group: await admin.list_consumer_group_offsets(group) for group in groups}
        topics = sorted({partition.topic for offsets in committed.values() for partition in offsets})
        descriptions = await admin.describe_topics(topics) if topics else []
    finally:
        await admin.close()
    partitions = {
        description["topic"]: [TopicPartition(description["topic"], p["partition"]) for p in description["partitions"]]
        for description in descriptions
    }
    every_partition = [partition for listed in partitions.values() for partition in listed]
    reader = await started(lambda: AIOKafkaConsumer(bootstrap_servers=bootstrap_servers), CONNECT_TIMEOUT)
    try:
        ends = await reader.end_offsets(every_partition) if every_partition else {}
    finally:
        await reader.stop()
    lags = []
    for group, offsets in committed.items():
        for topic in sorted({partition.topic for partition in offsets}):
            for partition in partitions.get(topic, []):
                done = offsets.get(partition)
                lags.append(
                    PartitionLag(group, topic, partition.partition, done.offset if done else 0, ends[partition])
                )
    return lags
