from pydantic import Field

from common.settings import OutboxSettings


class RelaySettings(OutboxSettings):
    relay_batch_size: int = Field(500, gt=0)
    relay_workers: int = Field(2, gt=0)  # drain loops per outbox while it has a backlog (per relay instance)
    relay_poll_interval: float = Field(5.0, gt=0)  # fallback when no NOTIFY arrives (the commit wakes the relay)
    # Milliseconds to wait after a wake-up before claiming, so that rows committing meanwhile share the claim and
    # the produce request (as Kafka's linger.ms): fewer round trips per event under load, this much more latency.
    relay_linger_ms: int = Field(5, ge=0)
    relay_max_attempts: int = Field(10, gt=0)  # failed publications of one row before it is dead-lettered
    relay_retention_hours: float = Field(24.0, ge=0)  # published rows are kept this long (for replay)
    relay_purge_interval: float = Field(300.0, gt=0)
