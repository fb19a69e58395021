"""Publishing outbox records to Kafka: keyed by aggregate id, envelope in headers, idempotent, acks=all."""

import asyncio
import functools
import logging
from collections.abc import Callable
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
    transient = KafkaConnectionError | KafkaTimeoutError | TimeoutError  # TimeoutError: no acknowledgement in time
    return isinstance(error, transient) or bool(getattr(error, "retriable", False))


@functools.lru_cache(maxsize=65536)
def partition_index(key: bytes, partitions: int) -> int:
    """The partition (index into the topic's sorted partitions) of a key, as Java clients and aiokafka's default
    partitioner choose it: murmur2 of the key. Remembered, because aiokafka's murmur2 is pure Python and an
    aggregate's key recurs in every one of its events."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass
class PublishResult:
    published: list[OutboxRecord] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)


class Publisher:
    """An idempotent producer (acks from all in-sync replicas; the broker drops the copies its own retries would
    make) that publishes a claim's records, per partition in order.

    The Kafka producer is made by `make_producer` (AIOKafkaProducer, or a wrapper around it that a test composes)."""

    def __init__(
        self,
        bootstrap_servers: str,
        request_timeout_ms: int = 5000,
        linger_ms: int = 2,
        make_producer: Callable[..., AIOKafkaProducer] = AIOKafkaProducer,
    ) -> None:
        self._options = {
            "bootstrap_servers": bootstrap_servers,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": linger_ms,
            "max_request_size": MAX_REQUEST_BYTES,
            "max_batch_size": 256 * 1024,
            "request_timeout_ms": request_timeout_ms,
            "client_id": "outbox-relay",
        }
        # An idempotent producer retries a batch until the broker takes it; the relay waits this long for the
        # acknowledgement, then backs off (the batch may still land: its records are published again, in order).
        self._delivery_timeout = 2 * request_timeout_ms / 1000
        self._make_producer = make_producer
        self._producer: AIOKafkaProducer | None = None
        self._renew = False

    async def start(self) -> None:
        # aiokafka binds to the running loop: create the producer inside it.
        self._producer = await started(lambda: self._make_producer(**self._options))

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def publish(self, records: list[OutboxRecord]) -> PublishResult:
        """Send `records` in order and wait for the acknowledgements.

        Per aggregate, only the records before its first failure count as published, so that the aggregate
        stays in order when the failed record is retried. Raises `BrokerUnavailable` when nothing was
        published and every failure was the broker's fault.
        """
        if self._renew:
            await self._renew_producer()
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
        per record, which costs several times the CPU per event; the partitions are sent side by side."""
        assert self._producer is not None, "start() the publisher first"
        producer = self._producer
        entries: list[tuple[OutboxRecord, BatchBuilder | BaseException]] = []
        batches: dict[TopicPartition, list[BatchBuilder]] = {}
        partitions: dict[str, list[int]] = {}
        rejected: set[tuple[str, str]] = set()
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
            queue = batches.setdefault(partition, [])
            if not queue or queue[-1].append(timestamp=None, key=key, value=value, headers=headers) is None:
                queue.append(producer.create_batch())  # the first, or the last is full
                queue[-1].append(timestamp=None, key=key, value=value, headers=headers)  # an empty batch takes any
            entries.append((record, queue[-1]))

        outcomes: dict[int, object] = {}  # id(batch) -> its acknowledgement or its error
        await asyncio.gather(
            *(self._send_in_order(producer, partition, queue, outcomes) for partition, queue in batches.items())
        )
        return [
            (record, outcomes[id(entry)] if isinstance(entry, BatchBuilder) else entry) for record, entry in entries
        ]

    async def _send_in_order(
        self,
        producer: AIOKafkaProducer,
        partition: TopicPartition,
        queue: list[BatchBuilder],
        outcomes: dict[int, object],
    ) -> None:
        """A partition's batches one after the other, each sent once the one before is acknowledged. A batch that
        fails fails every later one unsent: sent anyway, a later batch could land before the earlier one's retry,
        and an aggregate with records in both would be consumed out of order."""
        for index, batch in enumerate(queue):
            try:
                delivery = await producer.send_batch(batch, partition.topic, partition=partition.partition)
                delivery.add_done_callback(_settled)  # it may settle after the wait below has given up on it
                outcomes[id(batch)] = await asyncio.wait_for(asyncio.shield(delivery), self._delivery_timeout)
            except (KafkaError, TimeoutError) as error:
                for unsent in queue[index:]:
                    outcomes[id(unsent)] = error
                # The broker refused a batch it was sent, for good: its sequence numbers are spent, and it would
                # refuse the producer's next batch of the partition as out of sequence. A new producer starts anew.
                self._renew = self._renew or not is_transient(error)
                return

    async def _renew_producer(self) -> None:
        log.warning("relay: a batch failed for good; starting a new idempotent producer")
        self._renew = False
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), self._delivery_timeout)
            except (KafkaError, TimeoutError) as error:  # batches of other partitions still waiting for a broker
                log.warning("relay: the old producer stopped uncleanly: %r", error)
        await self.start()


def _settled(delivery: asyncio.Future) -> None:
    """Retrieve a delivery's outcome, so that one the relay stopped waiting for is not reported as never retrieved."""
    if not delivery.cancelled():
        delivery.exception()


def _refuse_oversized(key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
    if size > MAX_REQUEST_BYTES:
        raise MessageSizeTooLargeError(
            f"The message is {size} bytes when serialized, larger than the {MAX_REQUEST_BYTES} bytes of a request"
        )
