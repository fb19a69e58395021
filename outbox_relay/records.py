"""An outbox row as the relay sees it, whichever database it came from."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class OutboxRecord:
    id: str
    aggregate_type: str
    aggregate_id: str
    event_type: str
    topic: str
    payload: Any  # already-decoded JSON, or the JSON text as stored
    headers: dict[str, str]
    created_at: datetime
    attempts: int

    @property
    def aggregate(self) -> tuple[str, str]:
        return self.aggregate_type, self.aggregate_id

    def value(self) -> bytes:
        payload = self.payload if isinstance(self.payload, str) else json.dumps(self.payload, default=str)
        return payload.encode()

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        """The envelope of DESIGN §4: event id and type, aggregate, correlation and causation, time."""
        envelope = {
            "event_id": self.id,
            "event_type": self.event_type,
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "occurred_at": self.created_at.isoformat(),
            **self.headers,
        }
        return [(name, str(value).encode()) for name, value in envelope.items()]


@dataclass(frozen=True)
class Failure:
    record: OutboxRecord
    error: str
    transient: bool  # the broker's fault (down, timed out), not the record's: not counted as an attempt


@dataclass(frozen=True)
class OutboxStats:
    """An outbox's figures for operators: its backlog, its throughput and what it gave up on."""

    unpublished: int
    oldest_unpublished_seconds: float  # 0 when nothing waits
    published_last_minute: int
    dead_letters: int
