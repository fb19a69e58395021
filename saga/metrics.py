"""The saga's Prometheus metrics, in its app's registry (common/metrics.py)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from common.metrics import DURATION_BUCKETS

# A step lasts from its command (or the reservation's success, for the payment) to its end: milliseconds for stock,
# up to PAYMENT_TIMEOUT (15 minutes by default) for a payment.
STEP_BUCKETS = (*DURATION_BUCKETS, 30, 60, 300, 900, 3600)


class SagaMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or CollectorRegistry()
        self.sagas = Gauge("saga_sagas", "Sagas by state (counted every few seconds)", ["state"], registry=registry)
        self.step_duration = Histogram(
            "saga_step_duration_seconds",
            "A step from its start to its end, by step and how it ended",
            ["step", "outcome"],
            buckets=STEP_BUCKETS,
            registry=registry,
        )
        self.resends = Counter(
            "saga_command_resends_total", "Commands sent again after their reply was late", ["step"], registry=registry
        )
        self.deadlines = Counter(
            "saga_deadlines_total",
            "Deadlines that passed: a step's reply timeout (step) or the payment's (payment)",
            ["kind"],
            registry=registry,
        )
        self.failed = Counter(
            "saga_failed_total", "Sagas that became FAILED (no reply after every attempt)", registry=registry
        )
