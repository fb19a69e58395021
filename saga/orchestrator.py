"""The order saga's state machine (DESIGN §5). Every function runs inside the caller's transaction with the
saga row locked, so the consumers of orders and of stock replies, the deadline timer and an admin's retry —
in this process or in another instance — move one saga one step at a time.

    STARTED -> RESERVING -> AWAITING_PAYMENT -> CONFIRMING -> COMPLETED
    RESERVING -- stock rejected --> RELEASING (compensation) -> REJECTED      (order -> rejected)
    RESERVING / AWAITING_PAYMENT -- order cancelled --> RELEASING -> CANCELLED
    AWAITING_PAYMENT -- payment deadline --> RELEASING -> EXPIRED               (order -> cancelled)
    a step without reply after its attempts -> FAILED (an admin retries it)

Commands go to stock through this service's outbox, keyed by order id: stock handles one order's commands in
order, so a release sent while a reservation is under way is applied after it and leaves nothing reserved.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.timezone import now

from common.logs import correlation_id
from common.messages import CONFIRM_STOCK, RELEASE_STOCK, RESERVE_STOCK, SAGA_EXPIRED, SAGA_REJECTED
from common.outbox import Event, write_events
from common.topics import SAGA_EVENTS, STOCK_COMMANDS
from saga.models import Saga, SagaState, SagaStep, StepName, StepState

COMMAND_OF_STATE = {
    SagaState.RESERVING: (StepName.RESERVE, RESERVE_STOCK),
    SagaState.CONFIRMING: (StepName.CONFIRM, CONFIRM_STOCK),
    SagaState.RELEASING: (StepName.RELEASE, RELEASE_STOCK),
}


@dataclass(frozen=True)
class Timing:
    payment_timeout: float
    step_timeout: float
    step_max_attempts: int


class Orchestrator:
    def __init__(self, timing: Timing) -> None:
        self.timing = timing

    # --- what the orders say -------------------------------------------------------------------------------------

    async def order_placed(self, connection: BaseDBAsyncClient, payload: dict[str, Any], cause: str) -> None:
        order_id = uuid.UUID(payload["order_id"])
        if await Saga.filter(order_id=order_id).using_db(connection).exists():
            return  # the same order placed twice (another event id): one saga
        saga = await Saga.create(
            order_id=order_id,
            user_id=int(payload["user_id"]),
            state=SagaState.STARTED,
            items=[{"product_id": i["product_id"], "quantity": i["quantity"]} for i in payload["items"]],
            correlation_id=correlation_id.get(),
            using_db=connection,
        )
        await self._enter(connection, saga, SagaState.RESERVING, cause)

    async def order_paid(self, connection: BaseDBAsyncClient, order_id: str, cause: str) -> None:
        saga = await _locked(connection, order_id)
        if saga is None:
            return
        if saga.state == SagaState.AWAITING_PAYMENT:
            await _finish_running_step(connection, saga, StepState.SUCCEEDED)
            await self._enter(connection, saga, SagaState.CONFIRMING, cause)
        elif saga.state == SagaState.RESERVING:
            saga.paid = True  # confirmed as soon as the reservation succeeds
            await saga.save(using_db=connection, update_fields=["paid", "updated_at"])

    async def order_cancelled(self, connection: BaseDBAsyncClient, order_id: str, cause: str) -> None:
        saga = await _locked(connection, order_id)
        if saga is None or saga.state not in (SagaState.RESERVING, SagaState.AWAITING_PAYMENT, SagaState.FAILED):
            return
        if saga.state == SagaState.FAILED and saga.failed_in not in (SagaState.RESERVING, SagaState.AWAITING_PAYMENT):
            return
        await _finish_running_step(connection, saga, StepState.ABANDONED, "the order was cancelled")
        await self._release(connection, saga, SagaState.CANCELLED, "the order was cancelled", cause)

    # --- what stock says -----------------------------------------------------------------------------------------

    async def stock_reserved(self, connection: BaseDBAsyncClient, order_id: str, cause: str) -> None:
        saga = await _locked(connection, order_id)
        if saga is None or saga.state != SagaState.RESERVING:
            return  # a duplicate reply, or the saga moved on (a cancel is releasing whatever was reserved)
        await _finish_running_step(connection, saga, StepState.SUCCEEDED)
        next_state = SagaState.CONFIRMING if saga.paid else SagaState.AWAITING_PAYMENT
        await self._enter(connection, saga, next_state, cause)

    async def stock_rejected(self, connection: BaseDBAsyncClient, payload: dict[str, Any], cause: str) -> None:
        saga = await _locked(connection, payload["order_id"])
        if saga is None or saga.state != SagaState.RESERVING:
            return
        reason = payload.get("reason") or "not enough stock"
        await _finish_running_step(connection, saga, StepState.FAILED, reason)
        # Stock reserves all items or none; releasing anyway undoes any partial reservation a participant made.
        await self._release(connection, saga, SagaState.REJECTED, reason, cause)

    async def stock_released(self, connection: BaseDBAsyncClient, order_id: str, cause: str) -> None:
        saga = await _locked(connection, order_id)
        if saga is None or saga.state != SagaState.RELEASING:
            return
        await _finish_running_step(connection, saga, StepState.SUCCEEDED)
        outcome = saga.release_outcome or SagaState.CANCELLED
        await self._enter(connection, saga, outcome, cause)
        if outcome == SagaState.REJECTED:
            await _tell_orders(connection, saga, SAGA_REJECTED, cause, reason=saga.reason)
        elif outcome == SagaState.EXPIRED:
            await _tell_orders(connection, saga, SAGA_EXPIRED, cause)

    async def stock_confirmed(self, connection: BaseDBAsyncClient, order_id: str, cause: str) -> None:
        saga = await _locked(connection, order_id)
        if saga is None or saga.state != SagaState.CONFIRMING:
            return
        await _finish_running_step(connection, saga, StepState.SUCCEEDED)
        await self._enter(connection, saga, SagaState.COMPLETED, cause)

    # --- deadlines and retries -----------------------------------------------------------------------------------

    async def deadline_passed(self, connection: BaseDBAsyncClient, saga: Saga) -> None:
        """The saga's `due_at` passed (the caller locked the row): expire the payment or resend the command."""
        if saga.state == SagaState.AWAITING_PAYMENT:
            await _finish_running_step(connection, saga, StepState.ABANDONED, "payment deadline passed")
            await self._release(connection, saga, SagaState.EXPIRED, "payment deadline passed", cause=None)
            return
        step = await _running_step(connection, saga)
        if saga.state not in COMMAND_OF_STATE or step is None:
            saga.due_at = None
            await saga.save(using_db=connection, update_fields=["due_at", "updated_at"])
            return
        if step.attempts >= self.timing.step_max_attempts:
            error = f"no reply from stock after {step.attempts} attempts"
            await _finish_step(connection, step, StepState.FAILED, error)
            saga.failed_in, saga.reason, saga.due_at = saga.state, error, None
            saga.state = SagaState.FAILED
            await saga.save(using_db=connection)
            return
        await self._send_command(connection, saga, step, cause=None)

    async def retry(self, connection: BaseDBAsyncClient, saga: Saga) -> None:
        """An admin's retry of a FAILED saga (row locked by the caller): the failed step starts over."""
        resume_in = saga.failed_in or SagaState.RESERVING
        saga.failed_in = None
        await self._enter(connection, saga, resume_in, cause=None)

    # --- moving ----------------------------------------------------------------------------------------------------

    async def _release(
        self, connection: BaseDBAsyncClient, saga: Saga, outcome: SagaState, reason: str, cause: str | None
    ) -> None:
        saga.release_outcome, saga.reason, saga.failed_in = outcome, reason, None
        await self._enter(connection, saga, SagaState.RELEASING, cause)

    async def _enter(self, connection: BaseDBAsyncClient, saga: Saga, state: SagaState, cause: str | None) -> None:
        saga.state = state
        saga.due_at = None
        if state == SagaState.AWAITING_PAYMENT:
            saga.payment_deadline = now() + timedelta(seconds=self.timing.payment_timeout)
            saga.due_at = saga.payment_deadline
            await SagaStep.create(saga_id=saga.order_id, name=StepName.AWAIT_PAYMENT, using_db=connection)
        await saga.save(using_db=connection)
        if state in COMMAND_OF_STATE:
            step = await SagaStep.create(saga_id=saga.order_id, name=COMMAND_OF_STATE[state][0], using_db=connection)
            await self._send_command(connection, saga, step, cause)

    async def _send_command(self, connection: BaseDBAsyncClient, saga: Saga, step: SagaStep, cause: str | None) -> None:
        """Send (or send again) the step's command; its reply is due within the step timeout, doubling per try."""
        _, command = COMMAND_OF_STATE[saga.state]
        payload: dict[str, Any] = {"order_id": str(saga.order_id)}
        if command == RESERVE_STOCK:
            payload["items"] = saga.items
        event = Event(STOCK_COMMANDS, command, "order", str(saga.order_id), payload, causation_id=cause)
        await write_events(connection, [event])
        step.attempts += 1
        step.command_id = event.id
        await step.save(using_db=connection, update_fields=["attempts", "command_id"])
        saga.due_at = now() + timedelta(seconds=self.timing.step_timeout * 2 ** (step.attempts - 1))
        await saga.save(using_db=connection, update_fields=["due_at", "updated_at"])


async def _locked(connection: BaseDBAsyncClient, order_id: str | uuid.UUID) -> Saga | None:
    return await Saga.filter(order_id=order_id).using_db(connection).select_for_update().first()


async def _running_step(connection: BaseDBAsyncClient, saga: Saga) -> SagaStep | None:
    return await SagaStep.filter(saga_id=saga.order_id, state=StepState.RUNNING).using_db(connection).first()


async def _finish_running_step(
    connection: BaseDBAsyncClient, saga: Saga, state: StepState, error: str | None = None
) -> None:
    step = await _running_step(connection, saga)
    if step is not None:
        await _finish_step(connection, step, state, error)


async def _finish_step(connection: BaseDBAsyncClient, step: SagaStep, state: StepState, error: str | None) -> None:
    step.state, step.finished_at, step.error = state, now(), error
    await step.save(using_db=connection, update_fields=["state", "finished_at", "error"])


async def _tell_orders(
    connection: BaseDBAsyncClient, saga: Saga, event_type: str, cause: str | None, **details: Any
) -> None:
    payload = {"order_id": str(saga.order_id), **{k: v for k, v in details.items() if v is not None}}
    await write_events(connection, [Event(SAGA_EVENTS, event_type, "order", str(saga.order_id), payload, cause)])
