"""A consumer whose group's committed offsets the log does not hold (the topic was recreated, or the broker lost or
deleted the messages) says so loudly and reads the partitions again from their first message: jumping to their end
would skip every event published since, unseen. The inbox skips what was applied before."""

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from common.topics import PARTITIONS
from tests.outbox_relay.conftest import applied_count, assert_exactly_once_in_order, commit_events, thing_happened
from tests.support import wait_until

EVENTS = 5


async def test_offsets_out_of_range_rewind_to_the_first_message(
    ledger, topic, kafka_bootstrap, start_relay, start_consumer, caplog
):
    partitions = [TopicPartition(topic, partition) for partition in range(PARTITIONS)]
    committer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=f"ledger-{topic}", enable_auto_commit=False
    )
    await committer.start()
    try:
        committer.assign(partitions)
        await committer.commit(dict.fromkeys(partitions, 1000))  # past the end of every partition
    finally:
        await committer.stop()
    await start_relay()
    await commit_events([thing_happened(topic, "a", seq) for seq in range(EVENTS)])

    with caplog.at_level(logging.ERROR, logger="common.consumer"):
        await start_consumer()
        await wait_until(lambda: _applied(ledger, EVENTS), timeout=30)
    await assert_exactly_once_in_order(ledger, {"a": EVENTS})
    complaints = [record.getMessage() for record in caplog.records if "out of range" in record.getMessage()]
    named = {partition for partition in partitions if any(f"{topic}[{partition.partition}]" in c for c in complaints)}
    assert named == set(partitions), complaints  # each partition's rewind said, at ERROR


async def _applied(ledger, expected: int) -> bool:
    return await applied_count(ledger) >= expected
