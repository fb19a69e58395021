"""Prometheus metrics of one relay, in its app's registry (common/metrics.py) or one of their own."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class RelayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.pending = Gauge("outbox_pending_rows", "Unpublished rows per outbox", ["outbox"], registry=self.registry)
        self.oldest_pending_age = Gauge(
            "outbox_oldest_pending_seconds", "Age of the oldest unpublished row", ["outbox"], registry=self.registry
        )
        self.dead_letters = Gauge(
            "outbox_dead_letter_rows", "Rows given up on, awaiting re-drive", ["outbox"], registry=self.registry
        )
        self.published = Counter(
            "relay_published_total", "Events published and acknowledged", ["outbox", "topic"], registry=self.registry
        )
        self.failed = Counter(
            "relay_failed_total", "Publications that failed", ["outbox", "kind"], registry=self.registry
        )
        self.lag = Histogram(
            "relay_commit_to_ack_seconds",
            "From the outbox row's creation to the broker's acknowledgement",
            ["outbox"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.stage = Histogram(
            "relay_stage_seconds",
            "Time of one batch in each stage: claim (the locking query), publish (until every acknowledgement),"
            " mark (marking published and committing)",
            ["outbox", "stage"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
