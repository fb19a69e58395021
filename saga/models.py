from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class SagaState(StrEnum):
    STARTED = "STARTED"
    RESERVING = "RESERVING"
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    CONFIRMING = "CONFIRMING"
    COMPLETED = "COMPLETED"
    RELEASING = "RELEASING"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"


TERMINAL_STATES = frozenset({SagaState.COMPLETED, SagaState.REJECTED, SagaState.CANCELLED, SagaState.EXPIRED})


class StepName(StrEnum):
    RESERVE = "reserve"
    AWAIT_PAYMENT = "await_payment"
    CONFIRM = "confirm"
    RELEASE = "release"


class StepState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABANDONED = "abandoned"  # overtaken by events: a cancel during the reservation, an expiry, a rejection


class Saga(Model):
    """One order's saga. Its row is locked (SELECT ... FOR UPDATE) by whatever moves it."""

    order_id = fields.UUIDField(primary_key=True)
    user_id = fields.IntField()
    state = fields.CharEnumField(SagaState, max_length=20)
    items: fields.JSONField[list[dict[str, Any]]] = fields.JSONField()
    paid = fields.BooleanField(default=False)  # the payment came while the stock was still being reserved
    # Why the stock is being (or was) released: the terminal state that follows the release.
    # tortoise types a nullable TextField or CharEnumField as never None; these annotations say it can be.
    release_outcome: fields.Field[SagaState | None] = fields.CharEnumField(  # type: ignore[assignment]
        SagaState, max_length=20, null=True
    )
    reason: fields.Field[str | None] = fields.TextField(null=True)  # type: ignore[assignment]
    failed_in: fields.Field[SagaState | None] = fields.CharEnumField(  # type: ignore[assignment]
        SagaState, max_length=20, null=True
    )  # the state to retry from
    correlation_id = fields.CharField(max_length=100, null=True)
    payment_deadline = fields.DatetimeField(null=True)
    due_at = fields.DatetimeField(null=True, db_index=True)  # the next deadline: a step's timeout or the payment's
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    steps: fields.ReverseRelation["SagaStep"]

    class Meta:
        table = "sagas"


class SagaStep(Model):
    id = fields.BigIntField(primary_key=True)
    saga: fields.ForeignKeyRelation[Saga] = fields.ForeignKeyField(
        "saga.Saga", related_name="steps", on_delete=fields.CASCADE, db_index=True
    )
    name = fields.CharEnumField(StepName, max_length=20)
    state = fields.CharEnumField(StepState, max_length=20, default=StepState.RUNNING)
    attempts = fields.IntField(default=0)  # commands sent for this step
    command_id = fields.UUIDField(null=True)  # the event id of the last command sent
    started_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)
    error: fields.Field[str | None] = fields.TextField(null=True)  # type: ignore[assignment]  # as in Saga

    class Meta:
        table = "saga_steps"
        ordering = ("id",)


class SagaMessage(Model):
    """A message that moved the saga (received) or that a move sent, in the order they happened: the console's
    commands and replies, with their event ids."""

    id = fields.BigIntField(primary_key=True)
    saga: fields.ForeignKeyRelation[Saga] = fields.ForeignKeyField(
        "saga.Saga", related_name="messages", on_delete=fields.CASCADE, db_index=True
    )
    direction = fields.CharField(max_length=8)  # received / sent
    event_id = fields.UUIDField()
    event_type = fields.CharField(max_length=50)
    topic = fields.CharField(max_length=100)
    causation_id = fields.UUIDField(null=True)  # for a sent message: the received one it answered
    at = fields.DatetimeField()

    class Meta:
        table = "saga_messages"
        ordering = ("id",)
