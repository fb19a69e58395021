"""The saga's Prometheus metrics, in its app's registry (common/metrics.py)."""

import asyncio
import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from tortoise import connections

from common.metrics import DURATION_BUCKETS
from saga.models import SagaState

log = logging.getLogger(__name__)

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
            "Deadlines that passed: a step's reply timeout (step), the payment's (payment), a FAILED saga's (retry)",
            ["kind"],
            registry=registry,
        )
        self.failed = Counter(
            "saga_failed_total", "Sagas that became FAILED (no reply after every attempt)", registry=registry
        )


async def keep_counting_sagas(metrics: SagaMetrics, database: str, interval: float = 10.0) -> None:
    """Refresh `saga_sagas` every `interval` s: one grouped count, whichever instance asks (each reports the
    whole table; a dashboard takes max, not sum, across instances)."""
    while True:
        try:
            rows = await connections.get(database).execute_query_dict(
                "SELECT state, count(*) AS sagas FROM sagas GROUP BY state"
            )
        except Exception as error:  # the database restarting: the next round counts again
            log.warning("counting sagas failed: %r", error)
        else:
            counts = {row["state"]: row["sagas"] for row in rows}
            for state in SagaState:
                metrics.sagas.labels(state.value).set(counts.get(state.value, 0))
        await asyncio.sleep(interval)
