"""How a saga is shown by the inspection endpoint."""

from datetime import datetime
from typing import Any

from saga.models import Saga, SagaMessage, SagaStep


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
        "command_id": str(step.command_id) if step.command_id else None,  # the event id of its last command
    }


def message_view(message: SagaMessage) -> dict:
    return {
        "direction": message.direction,
        "event_id": str(message.event_id),
        "event_type": message.event_type,
        "topic": message.topic,
        "causation_id": str(message.causation_id) if message.causation_id else None,
        "at": _time(message.at),
    }


def saga_view(saga: Saga, steps: list[SagaStep] | None = None, messages: list[SagaMessage] | None = None) -> dict:
    view: dict[str, Any] = {
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
    if messages is not None:
        view["messages"] = [message_view(message) for message in messages]
    return view
