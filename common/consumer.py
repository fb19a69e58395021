"""The idempotent consumer every service uses to react to events: one per service, on all of its topics.

    consumer = EventConsumer("stock_svc", settings.kafka_bootstrap_servers, [PRODUCT_EVENTS, STOCK_COMMANDS],
                             {"product.created": on_product_created, ...}, database="stock_svc")

The records one fetch returns, for every partition it covers, are applied as a batch in ONE database transaction
(each partition's records in their order): one statement records every `(consumer, event_id)` in the inbox and
tells which are new, the handlers apply the new ones' effects in order; the offsets are committed in the background,
at most every COMMIT_INTERVAL (and before partitions move or the consumer stops). A crash before the commit
redelivers events whose effects the inbox then skips. When the batch fails, its events are
applied again one transaction each, so that a poison event is isolated: a handler that keeps failing
(`max_attempts`), one refused by a rule of the domain (a `DomainError`, at once), or a message that cannot be
decoded, goes to `inbox_dead_letter` and the partition moves on. An unreachable database, a deadlock or a
serialization failure is retried without counting against the event, by the one retry policy (common/retries.py):
it says nothing about the event. (One transaction per partition, the saga's loop at 200 orders/s spent 92% of its
time in transactions of 2.6 events each, one partition after the other, and an event waited ~100 ms for its turn;
one per fetch took its transactions from 159 to 93 per second and the order-to-AWAITING_PAYMENT p50 from 300 to
155 ms.)

A consumer given a `lock_key` serialises the events that share a key across transactions (and so across consumers):
the inbox statement first takes an advisory lock per key of the batch (common/inbox.py). stock_svc uses it so that
one order's saga commands apply one at a time. A consumer given `lock_rows` takes, right after that statement, the
row locks its handlers will take for the batch's new events, in one global order: each handler locks its own rows
in order, but one after the other they would not be, and two batches (two instances) could deadlock.

One client per service (not per topic): one fetch in flight per broker however many topics it reads. The broker
answers a fetch as soon as data arrives, and holds one that finds none for FETCH_MAX_WAIT_MS, which therefore
bounds only what an idle consumer costs (the idle local stack: 6.8% of a core at 500 ms, 4.5% at 2,000 ms; the
reservation latency at 10, 50 and 200 orders/s did not grow with it, within the noise). It is also the most a
partition can wait to be fetched again when its records were still being applied as aiokafka sent the next fetch
(aiokafka fetches a partition only once its records are taken): under load another partition's data ends that
fetch at once.
"""

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from common.errors import DomainError
from common.inbox import first_deliveries
from common.logs import correlation_id
from common.metrics import ServiceMetrics
from common.retries import until_it_passes
from common.topics import started

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 2000
COMMIT_INTERVAL = 0.2  # seconds


@dataclass(frozen=True)
class ReceivedEvent:
    id: uuid.UUID
    type: str
    aggregate_id: str
    payload: Any
    correlation_id: str | None
    occurred_at: str | None
    topic: str
    partition: int
    offset: int


Handler = Callable[[ReceivedEvent, BaseDBAsyncClient], Awaitable[None]]
BatchHandler = Callable[[list[ReceivedEvent], BaseDBAsyncClient], Awaitable[None]]


@dataclass(frozen=True)
class ForBatches:
    """A handler given consecutive new events of its type together, in partition order, to apply them in few
    statements: order_svc's stock levels (a read model keeping the latest value), the saga's two moves of every
    order."""

    handle: BatchHandler


# The key whose events must apply one transaction at a time (None: no lock needed), see EventConsumer.
LockKey = Callable[[ReceivedEvent], str | None]
# Locks, in one global order, the rows the handlers will lock for these new events of a batch, see EventConsumer.
RowLocks = Callable[[list[ReceivedEvent], BaseDBAsyncClient], Awaitable[None]]


class UndecodableMessage(Exception):
    pass


def decode(record: ConsumerRecord) -> ReceivedEvent:
    """The event in a Kafka message: JSON value, envelope in headers (DESIGN §4)."""
    headers = {name: value.decode(errors="replace") for name, value in record.headers or ()}
    try:
        return ReceivedEvent(
            id=uuid.UUID(headers["event_id"]),
            type=headers["event_type"],
            aggregate_id=headers.get("aggregate_id") or (record.key or b"").decode(errors="replace"),
            payload=orjson.loads(record.value) if record.value is not None else None,
            correlation_id=headers.get("correlation_id"),
            occurred_at=headers.get("occurred_at"),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
    except (KeyError, ValueError) as error:  # orjson.JSONDecodeError is one, also for JSON nested too deep
        raise UndecodableMessage(f"{type(error).__name__}: {error}") from None


class _GroupJoined(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka publishes no types
    """Tells when the consumer has joined its group and received its assignment (perhaps no partition, when the
    group has more members than the topics have partitions); first, the partitions the group has never read are
    set to start from their first message, all at once. (Left to the fetch, each would come back as an error of its
    own, one fetch apart: seconds before a new group consumes everything.) Before partitions move, what has been
    applied of them is committed, so that their next member does not receive it again."""

    def __init__(self, consumer: AIOKafkaConsumer, joined: asyncio.Event, owner: "EventConsumer") -> None:
        self._consumer = consumer
        self._joined = joined
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner.commit_everything()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._owner.forget_uncommitted(but=assigned)
        never_read = [partition for partition in assigned if await self._consumer.committed(partition) is None]
        if never_read:
            await self._consumer.seek_to_beginning(*never_read)
        self._joined.set()


class EventConsumer:
    def __init__(
        self,
        name: str,
        bootstrap_servers: str,
        topics: list[str],
        handlers: Mapping[str, Handler | ForBatches],
        database: str,
        max_attempts: int = 5,
        retry_delay: float = 0.1,
        lock_key: LockKey | None = None,
        lock_rows: RowLocks | None = None,
    ) -> None:
        self.name = name  # the consumer group, and the consumer's name in the inbox
        self.handlers = handlers
        self.database = database
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.commit_timeout = 2.0  # seconds
        self.commit_interval = COMMIT_INTERVAL  # seconds at least between two commits
        self.renew_after_failures = 15  # fetches failed in a row (one a second) before the Kafka client is replaced
        self.renew_after_silence = 60.0  # seconds without a fetch answer (or a partition) before it is replaced
        self.lock_key = lock_key
        self.lock_rows = lock_rows
        self.metrics = ServiceMetrics()  # register_consumers gives it the app's (common/service.py)
        self._topics = topics
        self._bootstrap_servers = bootstrap_servers
        self._kafka: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None
        self._joined = asyncio.Event()
        self._stopping = False
        self._uncommitted: dict[TopicPartition, int] = {}  # applied, not yet committed: the next offset of each
        self._committing: asyncio.Task | None = None  # _keep_committing, while there is something to commit
        self._commit_now = asyncio.Event()  # cuts _keep_committing's pause short

    async def start(self) -> None:
        # aiokafka binds to the running loop: create the client inside it.
        self._kafka = await started(self._new_client)
        self._task = asyncio.create_task(self._run(), name=f"consumer {self.name}")

    def _new_client(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            group_id=self.name,
            client_id=self.name,
            enable_auto_commit=False,
            # No silent reset: a partition the group has never read starts from its first message (_GroupJoined),
            # and one whose committed offset the log no longer holds comes back as an error that _run answers by
            # reading it again from its first message (_rewind).
            auto_offset_reset="none",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            max_poll_records=500,
        )

    async def _renew_client(self, why: str) -> None:
        """A new Kafka client in place of one that keeps failing. aiokafka's group coordination can end for good
        when the broker dies under it ("Unexpected error during coordination": its connection closed mid-request),
        and every fetch then fails while the process lives (seen after a broker SIGKILL, failure scenario 2)."""
        log.error("consumer %s: its Kafka client %s; starting a new one", self.name, why)
        assert self._kafka is not None
        broken, self._joined = self._kafka, asyncio.Event()
        try:
            await asyncio.wait_for(broken.stop(), 5)
        except (KafkaError, TimeoutError, RuntimeError) as error:
            log.warning("consumer %s: the failing client stopped uncleanly: %r", self.name, error)
        while not self._stopping:
            try:
                self._kafka = await started(self._new_client, timeout=60)
            except (KafkaError, OSError) as error:  # the broker is still away: keep trying, as the fetches did
                log.warning("consumer %s cannot reach the broker: %s", self.name, error)
                continue
            await self._subscribe_once_the_topics_exist()
            return

    async def stop(self) -> None:
        """Finish the event in hand, commit, leave the group. Safe to call twice, and with the broker down."""
        self._stopping = True
        if self._task is not None:
            finished, _ = await asyncio.wait({self._task}, timeout=10)
            if not finished:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        if self._kafka is not None:
            await self.commit_everything()
            kafka, self._kafka = self._kafka, None
            try:
                await kafka.stop()
            except KafkaError as error:
                log.warning("consumer %s stopped uncleanly: %s", self.name, error)

    @property
    def task(self) -> asyncio.Task | None:
        """The fetch loop, once started: it ends only when stopped, or on a bug (its exception then says which)."""
        return self._task

    @property
    def ready(self) -> bool:
        """Running, and a member of its group with its partitions assigned: the first event after this is
        handled as fast as any later one (joining a group takes seconds)."""
        return self._task is not None and not self._task.done() and self._joined.is_set()

    async def _subscribe_once_the_topics_exist(self) -> None:
        """Subscribe only once every topic exists: a group joined before would assign no partition of a missing
        topic until the next metadata refresh, minutes later, while the consumer looked ready (the local stack
        creates its topics while the services start)."""
        assert self._kafka is not None
        said = False
        while not self._stopping:
            try:
                missing = sorted(set(self._topics) - await self._kafka.topics())
            except KafkaError as error:
                missing = [f"(cannot list the topics: {error})"]
            if not missing:
                listener = _GroupJoined(self._kafka, self._joined, self)
                self._kafka.subscribe(self._topics, listener=listener)
                return
            if not said:
                log.warning("consumer %s waits for its topics %s (python -m common create-topics)", self.name, missing)
                said = True
            await asyncio.sleep(0.5)

    async def _run(self) -> None:
        assert self._kafka is not None
        await self._subscribe_once_the_topics_exist()
        failures = 0  # fetches failed in a row
        silent_since = time.monotonic()  # since when the broker has answered none of this client's fetches
        while not self._stopping:
            try:
                batches = await self._kafka.getmany(timeout_ms=500)
            except (NoOffsetForPartitionError, OffsetOutOfRangeError) as error:
                await self._rewind(error)
                continue
            except KafkaError as error:
                failures += 1
                log.warning("consumer %s cannot fetch: %s", self.name, error)
                await asyncio.sleep(1)
                if failures >= self.renew_after_failures:
                    failures = 0
                    await self._renew_client("keeps failing")
                    silent_since = time.monotonic()
                continue
            failures = 0
            if batches or self._answered_lately():
                silent_since = time.monotonic()
            elif time.monotonic() - silent_since > self.renew_after_silence:
                # No error, and no fetch answered (or no partition held) for a minute: a client stuck without a
                # word (seen once in a soak after the broker was frozen, then killed: one group consumed nothing
                # more while its members lived).
                await self._renew_client(f"has gone silent (no fetch answered for {self.renew_after_silence:.0f} s)")
                silent_since = time.monotonic()
                continue
            applied = await self.process_fetch(batches)  # the next offset of each partition, past what was applied
            for partition, next_offset in applied.items():
                self._observe_lag(partition, next_offset)
            if applied:
                self._uncommitted.update(applied)
                self._keep_committing_in_the_background()

    def _answered_lately(self) -> bool:
        """Whether the broker answered a fetch for one of the client's partitions in the last few seconds (a fetch
        is answered at least every FETCH_MAX_WAIT_MS, with records or without)."""
        assert self._kafka is not None
        now_ms = time.time() * 1000
        for partition in self._kafka.assignment():
            answered = self._kafka.last_poll_timestamp(partition)
            if answered is not None and now_ms - answered < 5 * FETCH_MAX_WAIT_MS:
                return True
        return False

    async def _rewind(self, error: NoOffsetForPartitionError | OffsetOutOfRangeError) -> None:
        """Read a partition from its first message: one this group has never read (no committed offset), or one
        whose committed offset the log does not hold (the topic was recreated, or the broker lost or deleted the
        messages). Never from its end, which would skip events silently; the inbox skips those already applied."""
        assert self._kafka is not None
        if isinstance(error, OffsetOutOfRangeError):
            offsets = error.args[0]
            log.error(
                "consumer %s: committed offsets out of range %s: the log does not hold them (topic recreated, or "
                "messages lost or deleted); reading these partitions again from their first message",
                self.name,
                {f"{partition.topic}[{partition.partition}]": offset for partition, offset in offsets.items()},
            )
            partitions = list(offsets)
        else:  # a partition _GroupJoined found a committed offset for, deleted since
            partitions = [error.args[0]]
            log.warning("consumer %s reads %s from its first message (no committed offset)", self.name, partitions[0])
        assigned = self._kafka.assignment()  # a rebalance may have moved some away since
        await self._kafka.seek_to_beginning(*(partition for partition in partitions if partition in assigned))

    def _observe_lag(self, partition: TopicPartition, next_offset: int) -> None:
        assert self._kafka is not None
        if partition not in self._kafka.assignment():
            # A rebalance moved it to another member while its records were applied; aiokafka asserts on it. (It
            # did, in a soak: the AssertionError ended this loop, and the group's partitions held by this process
            # were read by no one while it lived.)
            return
        highwater = self._kafka.highwater(partition)  # as of the last fetch
        if highwater is not None:
            lag = max(highwater - next_offset, 0)
            self.metrics.lag.labels(self.name, partition.topic, str(partition.partition)).set(lag)

    def _keep_committing_in_the_background(self) -> None:
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._keep_committing(), name=f"commits of {self.name}")

    async def _keep_committing(self) -> None:
        """Commit what has been applied, then again at most every `commit_interval` while more is: one commit
        request for the fetches of that interval, none in the fetch loop's way (awaited there, it added a round
        trip to the broker to every hop of the saga). A crash loses at most the interval's commits: the events are
        delivered again, and the inbox skips them."""
        while self._uncommitted:
            offsets, self._uncommitted = self._uncommitted, {}
            if not await self._commit(offsets):  # kept for the next try (newer offsets of a partition win)
                self._uncommitted = {**offsets, **self._uncommitted}
                if self._commit_now.is_set():
                    return  # commit_everything makes the last try itself
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._commit_now.wait(), self.commit_interval)

    def forget_uncommitted(self, but: set[TopicPartition]) -> None:
        """Uncommitted offsets of partitions not in `but` (a new assignment) dropped: another member has them."""
        self._uncommitted = {partition: offset for partition, offset in self._uncommitted.items() if partition in but}

    async def commit_everything(self) -> None:
        """Everything applied so far committed before returning, if the broker takes it: partitions are about to
        move, or the consumer stops."""
        self._commit_now.set()
        try:
            if self._committing is not None:
                await asyncio.gather(self._committing, return_exceptions=True)
            if self._uncommitted and await self._commit(self._uncommitted):
                self._uncommitted = {}
        finally:
            self._commit_now.clear()
        if self._uncommitted and not self._stopping:  # not taken now: tried again until it is
            self._keep_committing_in_the_background()

    async def _commit(self, offsets: dict[TopicPartition, int]) -> bool:
        """Whether the broker took the offsets (those of partitions that moved to another member left out: theirs
        now; it reads them from the last commit, the inbox dedups). False while the client holds no partition (it
        is joining its group) or the broker does not take them (away, or the group rebalancing): try again."""
        assert self._kafka is not None
        assigned = self._kafka.assignment()
        if not assigned:
            return False
        offsets = {partition: offset for partition, offset in offsets.items() if partition in assigned}
        if not offsets:  # aiokafka would refuse the whole commit for a partition not assigned
            return True
        try:
            # aiokafka retries a retriable commit error without end (a topic deleted under the group answers
            # UnknownTopicOrPartition for good): bounded, so that the consumer keeps consuming.
            await asyncio.wait_for(self._kafka.commit(offsets), self.commit_timeout)
            return True
        except (CommitFailedError, KafkaError, TimeoutError) as error:
            log.warning("consumer %s could not commit %s (tries again): %r", self.name, offsets, error)
            return False

    async def process_fetch(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> dict[TopicPartition, int]:
        """Apply one fetch's records in one transaction, or one at a time if that fails; the next offset of each
        partition past the records done (a stop can come first): the commit must not pass a record not applied.
        (The fetch loop calls it; tests hand it records directly.)"""
        events: list[ReceivedEvent] = []
        for record in (record for records in batches.values() for record in records):
            try:
                event = decode(record)
            except UndecodableMessage:
                break  # the one-at-a-time path dead-letters it in its place
            if event.type in self.handlers:  # others are another consumer's business
                events.append(event)
        else:
            if not events or await self._apply_whole(events):
                return {partition: records[-1].offset + 1 for partition, records in batches.items()}
        done: dict[TopicPartition, int] = {}
        for partition, records in batches.items():
            for record in records:
                if self._stopping:
                    return done
                await self._process(record)
                done[partition] = record.offset + 1
        return done

    async def _apply_whole(self, events: list[ReceivedEvent]) -> bool:
        """Whether the events were applied in one transaction: tried again while the database is away or contended
        (common/retries.py), False as soon as it fails otherwise (then each is applied on its own)."""
        try:
            async for attempt in until_it_passes(f"consumer {self.name}", self.retry_delay):
                with attempt:
                    await self.apply(events)
        except Exception as error:
            log.warning("consumer %s: a batch failed (%s); one event at a time", self.name, error)
            return False
        return True

    async def apply(self, events: list[ReceivedEvent]) -> None:
        """The events' effects in one transaction, with their inbox records, as for one fetched batch; each event
        seen before is skipped. (The fetch loop calls it; tests hand it events directly.)"""
        lock_key = self.lock_key
        keys = [key for event in events if (key := lock_key(event)) is not None] if lock_key else []
        started = time.perf_counter()
        async with in_transaction(self.database) as connection:
            new = await first_deliveries(connection, self.name, [(event.id, event.type) for event in events], keys)
            fresh: list[ReceivedEvent] = []
            outcomes: Counter[tuple[str, str]] = Counter()
            for event in events:
                if event.id in new:
                    new.discard(event.id)  # the same event twice in one batch: applied once
                    fresh.append(event)
                outcomes[event.topic, "handled" if fresh and fresh[-1] is event else "duplicate"] += 1
            if self.lock_rows is not None and len(fresh) > 1:  # one event's handler locks in order by itself
                await self.lock_rows(fresh, connection)
            for event_type, run in groupby(fresh, key=attrgetter("type")):
                await self._handle(self.handlers[event_type], list(run), connection)
        self.metrics.batch_duration.labels(self.name).observe(time.perf_counter() - started)
        for (topic, outcome), count in outcomes.items():
            self.metrics.consumed.labels(self.name, topic, outcome).inc(count)

    @staticmethod
    async def _handle(handler: Handler | ForBatches, run: list[ReceivedEvent], connection: BaseDBAsyncClient) -> None:
        """Consecutive new events of one type, in order."""
        if isinstance(handler, ForBatches):
            correlation_id.set(run[-1].correlation_id)
            await handler.handle(run, connection)
            return
        for event in run:
            correlation_id.set(event.correlation_id)
            await handler(event, connection)

    async def _process(self, record: ConsumerRecord) -> None:
        try:
            event = decode(record)
        except UndecodableMessage as error:
            await self._dead_letter(record, None, str(error), attempts=0)
            return
        if event.type not in self.handlers:
            return  # another consumer's business
        attempts = 0
        while True:
            try:
                async for attempt in until_it_passes(f"consumer {self.name}", self.retry_delay):
                    with attempt:
                        await self.apply([event])
                return
            except Exception as error:
                attempts += 1
                if isinstance(error, DomainError):  # a rule refused it: asking again would get the same answer
                    await self._dead_letter(record, event, f"{type(error).__name__}: {error}", attempts)
                    return
                log.warning(
                    "consumer %s: handler for %s failed (attempt %d): %s",
                    self.name,
                    event.type,
                    attempts,
                    error,
                    extra={"event_id": str(event.id)},
                )
                if attempts >= self.max_attempts or self._stopping:
                    await self._dead_letter(record, event, f"{type(error).__name__}: {error}", attempts)
                    return
                await asyncio.sleep(self.retry_delay * 2 ** (attempts - 1))

    async def _dead_letter(
        self, record: ConsumerRecord, event: ReceivedEvent | None, error: str, attempts: int
    ) -> None:
        log.error("consumer %s dead-letters %s@%d: %s", self.name, record.topic, record.offset, error)
        self.metrics.consumed.labels(self.name, record.topic, "dead_lettered").inc()
        headers = {_text(name): _text(value) for name, value in record.headers or ()}
        async for attempt in until_it_passes(f"consumer {self.name}", self.retry_delay):  # as for an effect
            with attempt:
                await connections.get(self.database).execute_query(
                    'INSERT INTO inbox_dead_letter (consumer, event_id, topic, partition, "offset", key, headers,'
                    " value, error, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10)"
                    " ON CONFLICT DO NOTHING",
                    [
                        self.name,
                        str(event.id) if event else _position(record),
                        record.topic,
                        record.partition,
                        record.offset,
                        _text(record.key or b""),
                        json.dumps(headers),
                        _text(record.value or b""),
                        _text(error[:2000]),
                        attempts,
                    ],
                )


def _position(record: ConsumerRecord) -> str:
    """The name of a message that cannot be decoded (whatever event id it claims): where it is, and when the broker
    took it (a topic recreated reuses offsets)."""
    return f"{record.topic}/{record.partition}/{record.offset}@{record.timestamp}"


def _text(data: bytes | str) -> str:
    """Bytes of a message as PostgreSQL text: undecodable bytes replaced, NUL (which neither text nor jsonb can
    hold) written as \\x00."""
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    return text.replace("\x00", "\\x00")
