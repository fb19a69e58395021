"""The relay picks a key's partition itself (it builds the broker batches): the choice must stay the one
aiokafka's default partitioner and the Java clients make, or an aggregate's events would change partition."""

import uuid

from aiokafka.partitioner import DefaultPartitioner

from outbox_relay.publisher import partition_index


def test_partition_of_a_key_is_the_default_partitioners():
    keys = [str(uuid.uuid4()).encode() for _ in range(500)] + [b"", b"order-1", "ünïcode".encode()]
    for partitions in (1, 3, 12, 36):
        everyone = list(range(partitions))
        for key in keys:
            assert partition_index(key, partitions) == DefaultPartitioner()(key, everyone, everyone)
