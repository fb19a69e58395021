"""Publishing outbox records to Kafka: keyed by aggregate id, envelope in headers, acks from all replicas."""

import asyncio
import functools
import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition

from common.topics import started
from outbox_relay.records import Failure, OutboxRecord

log = logging.getLogger(__name__)


MAX_REQUEST_BYTES = 1024 * 1024  # a record larger than this is refused before sending (the broker's default limit)


class BrokerUnavailable(Exception):
    """Nothing could be published: the broker is down or unreachable. Back off and try again."""


def is_transient(error: BaseException) -> bool:
    """Errors about the broker, not about the message: they say nothing against the record itself."""
    return isinstance(error, KafkaConnectionError | KafkaTimeoutError) or bool(getattr(error, "retriable", False))


@functools.lru_cache(maxsize=65536)
def partition_index(key: bytes, partitions: int) -> int:
    """The partition (index into the topic's sorted partitions) of a key, as Java clients and aiokafka's default
    partitioner choose it: murmur2 of the key. Remembered, because aiokafka's murmur2 is pure Python and an
    aggregate's key recurs in every one of its events."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass
class PublishResult:
    published: list[OutboxRecord] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)


class Publisher:
    def __init__(self, bootstrap_servers: str, request_timeout_ms: int = 5000, linger_ms: int = 2) -> None:
        self._options = {
            "bootstrap_servers": bootstrap_servers,
            "acks": "all",
            # Idempotent producers fail on tansu (InitProducerId); duplicates are the consumers' inbox's job.
            "enable_idempotence": False,
            "linger_ms": linger_ms,
            "max_request_size": MAX_REQUEST_BYTES,
            "max_batch_size": 256 * 1024,
            "request_timeout_ms": request_timeout_ms,
            "client_id": "outbox-relay",
        }
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # aiokafka binds to the running loop: create the producer inside it.
        self._producer = await started(lambda: AIOKafkaProducer(**self._options))

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def publish(self, records: list[OutboxRecord]) -> PublishResult:
        """Send `records` in order and wait for the acknowledgements.

        Per aggregate, only the records before its first failure count as published, so that the aggregate
        stays in order when the failed record is retried. Raises `BrokerUnavailable` when nothing was
        published and every failure was the broker's fault.
        """
        outcomes = await self._deliver(records)
        result = PublishResult()
        stopped: set[tuple[str, str]] = set()
        for record, outcome in outcomes:
            if record.aggregate in stopped:
                continue
            if isinstance(outcome, BaseException):
                stopped.add(record.aggregate)
                result.failed.append(Failure(record, f"{type(outcome).__name__}: {outcome}", is_transient(outcome)))
            else:
                result.published.append(record)
        if result.failed and not result.published and all(failure.transient for failure in result.failed):
            raise BrokerUnavailable(result.failed[0].error)
        return result

    async def _deliver(self, records: list[OutboxRecord]) -> list[tuple[OutboxRecord, object]]:
        """Each record with its outcome: its batch's acknowledgement, or the error that failed it, in `records`'
        order. Records go into one batch per partition (another when it fills), built here rather than by send()
        per record, which costs several times the CPU per event; batches of a partition are sent in order."""
        assert self._producer is not None, "start() the publisher first"
        producer = self._producer
        entries: list[tuple[OutboxRecord, BatchBuilder | BaseException]] = []
        filling: dict[TopicPartition, BatchBuilder] = {}
        deliveries: dict[int, asyncio.Future | BaseException] = {}  # id(batch) -> its acknowledgement
        partitions: dict[str, list[int]] = {}
        rejected: set[tuple[str, str]] = set()

        async def send(partition: TopicPartition, batch: BatchBuilder) -> None:
            try:
                deliveries[id(batch)] = await producer.send_batch(batch, partition.topic, partition=partition.partition)
            except KafkaError as error:  # no room in the send queue in time, or the producer closed
                deliveries[id(batch)] = error

        for record in records:
            if record.aggregate in rejected:
                continue
            key, value, headers = record.aggregate_id.encode(), record.value(), record.kafka_headers()
            try:
                _refuse_oversized(key, value, headers)
                if record.topic not in partitions:
                    partitions[record.topic] = sorted(await producer.partitions_for(record.topic))
                known = partitions[record.topic]
            except KafkaError as error:  # refused before sending: a record over the size limit, an unknown topic
                entries.append((record, error))
                rejected.add(record.aggregate)
                continue
            partition = TopicPartition(record.topic, known[partition_index(key, len(known))])
            batch = filling.get(partition)
            if batch is None or batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                if batch is not None:  # full: send it, and start the partition's next batch
                    await send(partition, batch)
                batch = filling[partition] = producer.create_batch()
                batch.append(timestamp=None, key=key, value=value, headers=headers)  # an empty batch takes any
            entries.append((record, batch))
        for partition, batch in filling.items():
            await send(partition, batch)

        pending = [delivery for delivery in deliveries.values() if isinstance(delivery, asyncio.Future)]
        await asyncio.gather(*pending, return_exceptions=True)
        return [
            (record, _outcome(deliveries[id(entry)]) if isinstance(entry, BatchBuilder) else entry)
            for record, entry in entries
        ]


def _refuse_oversized(key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
    if size > MAX_REQUEST_BYTES:
        raise MessageSizeTooLargeError(
            f"The message is {size} bytes when serialized, larger than the {MAX_REQUEST_BYTES} bytes of a request"
        )


def _outcome(delivery: asyncio.Future | BaseException) -> object:
    if isinstance(delivery, BaseException):
        return delivery
    return delivery.exception() or delivery.result()
