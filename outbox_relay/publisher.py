"""Publishing outbox records to Kafka: keyed by aggregate id, envelope in headers, acks from all replicas."""

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from common.topics import started
from outbox_relay.records import Failure, OutboxRecord

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """Nothing could be published: the broker is down or unreachable. Back off and try again."""


def is_transient(error: BaseException) -> bool:
    """Errors about the broker, not about the message: they say nothing against the record itself."""
    return isinstance(error, KafkaConnectionError | KafkaTimeoutError) or bool(getattr(error, "retriable", False))


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
        assert self._producer is not None, "start() the publisher first"
        loop = asyncio.get_running_loop()
        deliveries: list[tuple[OutboxRecord, asyncio.Future]] = []
        rejected: set[tuple[str, str]] = set()
        for record in records:
            if record.aggregate in rejected:
                continue
            try:
                delivery = await self._producer.send(
                    record.topic,
                    value=record.value(),
                    key=record.aggregate_id.encode(),
                    headers=record.kafka_headers(),
                )
            except KafkaError as error:  # refused before sending, e.g. a message over the size limit
                delivery = loop.create_future()
                delivery.set_exception(error)
                rejected.add(record.aggregate)
            deliveries.append((record, delivery))
        outcomes = await asyncio.gather(*(delivery for _, delivery in deliveries), return_exceptions=True)

        result = PublishResult()
        stopped: set[tuple[str, str]] = set()
        for (record, _), outcome in zip(deliveries, outcomes, strict=True):
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
