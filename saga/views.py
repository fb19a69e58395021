"""How a saga is shown by the inspection endpoint."""

from datetime import datetime

from saga.models import Saga, SagaStep


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def step_view(step: SagaStep) -> dict:
    return {
        "step": step.name.value,
        "state": step.state.value,
        "attempts": step.attempts,
        "started_at": _time(step.started_at),
        "finished_at": _time(step.finished_at),
        "error": step.error,
    }


def saga_view(saga: Saga, steps: list[SagaStep] | None = None) -> dict:
    view = {
        "order_id": str(saga.order_id),
        "user_id": str(saga.user_id),
        "state": saga.state.value,
        "reason": saga.reason,
        "correlation_id": saga.correlation_id,
        "payment_deadline": _time(saga.payment_deadline),
        "created_at": _time(saga.created_at),
        "updated_at": _time(saga.updated_at),
    }
    if steps is not None:
        view["steps"] = [step_view(step) for step in steps]
    return view
