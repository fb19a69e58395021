"""The Kafka ecosystem works against the local broker: Debian's kcat lists the topics and reads one, and a
librdkafka client (confluent-kafka) reads the same messages as `python -m common tail` and an aiokafka reader."""

import asyncio
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from common.topics import ALL_TOPICS, PARTITIONS, ensure_topics
from tests.common.test_tail import Shown, environment, parse_one_line, position, read_all, run_tail
from tests.support import envelope_producer

EVENTS = 6


@pytest.fixture(scope="module")
async def topic_with_events(kafka_bootstrap: str) -> str:
    """A new topic holding EVENTS events of three aggregates, produced as the relay produces them."""
    topic = f"clients-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, (*ALL_TOPICS, topic))
    async with envelope_producer(kafka_bootstrap) as send:
        for number in range(EVENTS):
            await send(topic, "order.placed", f"order-{number % 3}", {"number": number})
    return topic


def read_with_librdkafka(kafka_bootstrap: str, topic: str, count: int) -> list[Shown]:
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"test-{uuid.uuid4().hex[:8]}"})
    try:
        consumer.assign([TopicPartition(topic, partition, 0) for partition in range(PARTITIONS)])
        found: list[Shown] = []
        for _ in range(60):
            for message in consumer.consume(num_messages=count, timeout=0.5):
                assert message.error() is None, message.error()
                headers = {name: value.decode() for name, value in message.headers() or []}
                value = json.loads(message.value())
                found.append(Shown(message.partition(), message.offset(), message.key().decode(), headers, value))
            if len(found) >= count:
                break
        return found
    finally:
        consumer.close()


async def test_confluent_kafka_reads_what_tail_shows(kafka_bootstrap: str, topic_with_events: str, tmp_path: Path):
    by_librdkafka = sorted(
        await asyncio.to_thread(read_with_librdkafka, kafka_bootstrap, topic_with_events, EVENTS), key=position
    )
    by_aiokafka = sorted(await read_all(kafka_bootstrap, topic_with_events, EVENTS), key=position)
    env = environment(tmp_path, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)
    code, out, err = await run_tail(
        env, tmp_path, topic_with_events, "--from-beginning", "--max", str(EVENTS), "--one-line"
    )
    assert code == 0, err
    by_tail = sorted((parse_one_line(line) for line in out.splitlines()), key=position)

    assert len(by_librdkafka) == EVENTS
    assert by_librdkafka == by_aiokafka == by_tail
    assert sorted(shown.value["number"] for shown in by_librdkafka) == list(range(EVENTS))


def kcat(*arguments: str) -> str:
    binary = shutil.which("kcat")
    if binary is None:
        pytest.skip("kcat is not installed (apt-get install kcat; .ci/run installs it)")
    done = subprocess.run([binary, *arguments], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_kcat_lists_the_topics_and_reads_one(kafka_bootstrap: str, topic_with_events: str):
    listing = await asyncio.to_thread(kcat, "-b", kafka_bootstrap, "-L")
    for topic in (*ALL_TOPICS, topic_with_events):
        assert f'topic "{topic}" with {PARTITIONS} partitions' in listing, listing

    output = await asyncio.to_thread(
        kcat, "-b", kafka_bootstrap, "-C", "-t", topic_with_events, "-e", "-q", "-f", "%k %h %s\\n"
    )
    lines = output.splitlines()
    assert len(lines) == EVENTS, output
    numbers = sorted(json.loads(line.split(" ", 2)[2])["number"] for line in lines)
    assert numbers == list(range(EVENTS))
    assert all("event_type=order.placed" in line for line in lines)
