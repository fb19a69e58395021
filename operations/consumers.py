"""Consumer lag as the broker sees it (common/lag.py), read at most once per `max_age` s however many operators
look, with when each partition's committed offset last moved."""

import asyncio
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from common.lag import PartitionLag, consumer_lag

Partition = tuple[str, str, int]  # group, topic, partition


class LagWatch:
    def __init__(self, bootstrap_servers: str, max_age: float) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._max_age = max_age
        self._reading: asyncio.Task | None = None
        self._read_at = -float("inf")
        self._partitions: list[dict[str, Any]] = []
        # Each partition's last committed offset seen and when it changed (None: not seen to move since this
        # process started watching).
        self._moves: dict[Partition, tuple[int, datetime | None]] = {}

    async def partitions(self) -> list[dict[str, Any]]:
        """Every group's partitions: committed offset, log end, lag and `moved_at`. Callers at the same moment share
        one reading."""
        if time.monotonic() - self._read_at >= self._max_age:
            if self._reading is None:
                self._reading = asyncio.create_task(self._read())
            reading = self._reading
            try:
                await asyncio.shield(reading)
            finally:
                if self._reading is reading and reading.done():
                    self._reading = None
        return self._partitions

    async def _read(self) -> None:
        lags = await consumer_lag(self._bootstrap_servers)
        now = datetime.now(UTC)
        lags.sort(key=lambda lag: (lag.group, lag.topic, lag.partition))
        self._partitions = [self._view(lag, now) for lag in lags]
        self._read_at = time.monotonic()

    def _view(self, lag: PartitionLag, now: datetime) -> dict[str, Any]:
        key = (lag.group, lag.topic, lag.partition)
        committed, moved_at = self._moves.get(key, (lag.committed, None))
        if lag.committed != committed:
            moved_at = now
        self._moves[key] = (lag.committed, moved_at)
        return {**asdict(lag), "lag": lag.lag, "moved_at": moved_at}
