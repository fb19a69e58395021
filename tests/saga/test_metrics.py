"""The saga's metrics: step durations by outcome, resends, deadlines, FAILED sagas, and sagas by state."""

import asyncio

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from saga.metrics import SagaMetrics, keep_counting_sagas
from saga.models import SagaState
from saga.orchestrator import Orchestrator, Timing
from saga.timer import handle_due_sagas
from tests.saga.conftest import place, relay_publishes, run, stock_reserved


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def observed(step_timeout: float = 10, payment_timeout: float = 900) -> tuple[Orchestrator, CollectorRegistry]:
    registry = CollectorRegistry()
    return Orchestrator(Timing(payment_timeout, step_timeout, 3), SagaMetrics(registry)), registry


async def test_steps_are_timed_by_how_they_ended(client):
    saga, registry = observed()
    order_id = await place(saga)
    await run(stock_reserved(saga), order_id)
    await run(saga.order_paid, order_id)
    await run(saga.stock_confirmed, order_id)
    for step in ("reserve", "await_payment", "confirm"):
        assert value(registry, "saga_step_duration_seconds_count", step=step, outcome="succeeded") == 1
    rejected = await place(saga)
    await run(saga.stock_rejected, {"order_id": rejected, "reason": "insufficient stock"})
    assert value(registry, "saga_step_duration_seconds_count", step="reserve", outcome="failed") == 1


async def test_resends_deadlines_and_failures_are_counted(client):
    saga, registry = observed(step_timeout=0.01)
    await place(saga)
    for _ in range(3):  # two resends, then FAILED
        await relay_publishes()
        await asyncio.sleep(0.1)
        await handle_due_sagas(saga)
    assert value(registry, "saga_command_resends_total", step="reserve") == 2
    assert value(registry, "saga_deadlines_total", kind="step") == 3
    assert value(registry, "saga_failed_total") == 1

    expiring, registry = observed(payment_timeout=0.05)
    order_id = await place(expiring)
    await run(stock_reserved(expiring), order_id)
    await asyncio.sleep(0.1)
    await handle_due_sagas(expiring)
    assert value(registry, "saga_deadlines_total", kind="payment") == 1
    await run(expiring.order_cancelled, order_id)  # order_svc's answer to saga.expired ends the step
    assert value(registry, "saga_step_duration_seconds_count", step="await_payment", outcome="abandoned") == 1


async def test_sagas_are_counted_by_state_on_the_metrics_page(client):
    saga = Orchestrator(Timing(900, 10, 3))
    reserved = await place(saga)
    await run(stock_reserved(saga), reserved)
    await place(saga)
    metrics = SagaMetrics(CollectorRegistry())
    counting = asyncio.create_task(keep_counting_sagas(metrics, "saga", interval=0.05))
    try:
        await asyncio.sleep(0.2)
    finally:
        counting.cancel()
    counts = {state: metrics.sagas.labels(state)._value.get() for state in SagaState}
    assert counts["AWAITING_PAYMENT"] == 1 and counts["RESERVING"] == 1 and counts["COMPLETED"] == 0
    page = (await client.get("/metrics")).text
    assert "saga_sagas" in {family.name for family in text_string_to_metric_families(page)}
