"""The relay loop: wake on NOTIFY (or the fallback poll), claim, publish, mark; back off on failure."""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import CollectorRegistry
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from outbox_relay.metrics import RelayMetrics
from outbox_relay.outboxes import STORE_ERRORS
from outbox_relay.publisher import BrokerUnavailable, Publisher, PublishResult
from outbox_relay.records import Failure, OutboxRecord, OutboxStats
from outbox_relay.settings import RelaySettings

log = logging.getLogger(__name__)


class RecordsFailed(Exception):
    """Some records could not be published; they were counted and will be retried after a pause."""


class Batch(Protocol):
    records: list[OutboxRecord]

    async def settle(self, published: list[OutboxRecord], failed: list[Failure], max_attempts: int) -> int: ...


class OutboxSource(Protocol):
    name: str

    @property
    def is_open(self) -> bool: ...

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def wait_for_events(self, timeout: float) -> None: ...
    def claim(self, aggregates: int, limit: int) -> AbstractAsyncContextManager[Batch]: ...
    async def pending(self) -> int: ...
    async def stats(self) -> OutboxStats: ...
    async def purge(self, older_than_seconds: float) -> int: ...


# What a drain loop backs off on and retries: the broker, a record, or a database (PostgreSQL or MongoDB) failing.
_RETRYABLE = (BrokerUnavailable, RecordsFailed, *STORE_ERRORS)
_BACKOFF = wait_exponential_jitter(multiplier=0.05, max=5.0, jitter=0.05)  # 50 ms doubling to 5 s


def _log_backoff(outbox: str) -> Callable[[RetryCallState], None]:
    """An outage is a warning line; anything else is a bug, logged with its traceback, and retried all the same: a
    drain loop that ended would leave its outbox unpublished while the relay still looked healthy."""

    def log_backoff(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _RETRYABLE):
            log.warning("relay %s backs off: %s", outbox, error)
        else:
            log.error("relay %s failed unexpectedly; retrying", outbox, exc_info=error)

    return log_backoff


class Relay:
    def __init__(
        self,
        outboxes: Sequence[OutboxSource],
        publisher: Publisher,
        settings: RelaySettings,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.outboxes = outboxes
        self.publisher = publisher
        self.settings = settings
        self.metrics = RelayMetrics(registry)

    async def run(self) -> None:
        """Drain every outbox until cancelled."""
        loops = [self._keep_draining(outbox) for outbox in self.outboxes]
        loops += [self._keep_purging(), self._keep_gauges_fresh()]
        await asyncio.gather(*loops)

    async def _keep_draining(self, outbox: OutboxSource) -> None:
        while True:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(Exception), wait=_BACKOFF, before_sleep=_log_backoff(outbox.name)
            ):
                with attempt:
                    await outbox.open()  # the service may not have created its database yet
                    await self._drain(outbox)
            await outbox.wait_for_events(self.settings.relay_poll_interval)
            await asyncio.sleep(self.settings.relay_linger_ms / 1000)  # let the rows committing now join in

    async def _drain(self, outbox: OutboxSource) -> None:
        """Claim until the outbox is empty. A batch that is not full emptied it (of what no other relay holds): rows
        that commit after it come with a notification, so no claim is made just to find it empty. A full batch
        means a backlog: RELAY_WORKERS loops then claim side by side (one publishes while another claims)."""
        if await self.drain_once(outbox) < self.settings.relay_batch_size:
            return
        loops = [asyncio.create_task(self._drain_backlog(outbox)) for _ in range(self.settings.relay_workers)]
        try:
            await asyncio.gather(*loops)
        finally:  # one failed: the others stop too, and the retry starts over
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _drain_backlog(self, outbox: OutboxSource) -> None:
        while await self.drain_once(outbox) == self.settings.relay_batch_size:
            pass

    async def drain_once(self, outbox: OutboxSource) -> int:
        """Publish one batch; returns how many records it held (0 when the outbox is drained)."""
        size = self.settings.relay_batch_size
        stage = time.perf_counter()
        async with outbox.claim(aggregates=size, limit=size) as batch:
            if not batch.records:
                return 0
            stage = self._timed(outbox.name, "claim", stage)
            try:
                result = await self.publisher.publish(batch.records)
            except BrokerUnavailable:
                self.metrics.failed.labels(outbox.name, "broker").inc(len(batch.records))
                raise
            stage = self._timed(outbox.name, "publish", stage)
            dead = await batch.settle(result.published, result.failed, self.settings.relay_max_attempts)
        self._timed(outbox.name, "mark", stage)
        self._observe(outbox.name, result, dead)
        if result.failed:
            raise RecordsFailed(f"{len(result.failed)} records failed, {dead} dead-lettered")
        return len(batch.records)

    def _timed(self, outbox: str, stage: str, started: float) -> float:
        now = time.perf_counter()
        self.metrics.stage.labels(outbox, stage).observe(now - started)
        return now

    def _observe(self, outbox: str, result: PublishResult, dead: int) -> None:
        now = datetime.now(UTC)
        lag = self.metrics.lag.labels(outbox)
        for record in result.published:
            lag.observe((now - record.created_at).total_seconds())
        for topic, published in Counter(record.topic for record in result.published).items():
            self.metrics.published.labels(outbox, topic).inc(published)
        for failure in result.failed:
            self.metrics.failed.labels(outbox, "broker" if failure.transient else "record").inc()
        if dead:
            self.metrics.dead_letters.labels(outbox).inc(dead)

    async def _keep_purging(self) -> None:
        retention = self.settings.relay_retention_hours * 3600
        while True:
            for outbox in filter(lambda outbox: outbox.is_open, self.outboxes):
                try:
                    if purged := await outbox.purge(retention):
                        log.info("purged %d published rows from %s", purged, outbox.name)
                except STORE_ERRORS as error:
                    log.warning("purging %s failed: %s", outbox.name, error)
            await asyncio.sleep(self.settings.relay_purge_interval)

    async def _keep_gauges_fresh(self, interval: float = 10.0) -> None:
        # One statement per outbox: every 10 s is fresh enough for a Prometheus scrape and costs nothing at rest.
        while True:
            for outbox in filter(lambda outbox: outbox.is_open, self.outboxes):
                try:
                    stats = await outbox.stats()
                except STORE_ERRORS:
                    continue  # the drain loop reports the outage
                self.metrics.pending.labels(outbox.name).set(stats.unpublished)
                self.metrics.oldest_pending_age.labels(outbox.name).set(stats.oldest_unpublished_seconds)
                self.metrics.dead_letters.labels(outbox.name).set(stats.dead_letters)
            await asyncio.sleep(interval)
