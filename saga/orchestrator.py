"""The order saga's state machine (DESIGN §5). Every move runs inside the caller's transaction with the saga row
locked, so the consumers of orders and of stock replies, the deadline timer and an admin's retry — in this
process or in another instance — move one saga one step at a time.

    STARTED -> RESERVING -> AWAITING_PAYMENT -> CONFIRMING -> COMPLETED
    RESERVING -- stock rejected --> RELEASING (compensation) -> REJECTED      (order -> rejected)
    RESERVING / AWAITING_PAYMENT -- order cancelled --> RELEASING -> CANCELLED
    REJECTED (or releasing after the rejection) -- order cancelled --> CANCELLED     (the order stays cancelled)
    AWAITING_PAYMENT -- payment deadline: saga.expired, order -> cancelled, order.cancelled --> RELEASING -> EXPIRED
    a step without reply after its attempts -> FAILED, retried automatically with backoff (an admin may retry sooner)

Commands go to stock through this service's outbox, keyed by order id: stock handles one order's commands in
order, so a release sent while a reservation is under way is applied after it and leaves nothing reserved.

A payment and the payment deadline are decided by order_svc, on the order's row: at the deadline the saga asks it to
cancel the order (saga.expired) and keeps the stock until it answers. A still pending order is cancelled, and its
order.cancelled makes the saga release (EXPIRED); an order paid first stays paid, and its order.paid, already on its
way, confirms the stock. (Releasing at the deadline itself left an order paid in that moment without its stock.)

Outages. A command still in the outbox (the relay or the broker away) is not sent again and its wait does not count
against the step: only commands that left count. A step that fails anyway (stock away longer than the step's
budget) is retried automatically, after as long again as the saga has lived (at least FAILED_RETRY_DELAY, at most
MAX_RETRY_DELAY), and a reply that arrives while the saga is FAILED is applied as if it had come in time.

The decisions are made here on a `Move` (saga/moves.py): read with one statement, written with one.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.timezone import now

from common.consumer import ReceivedEvent
from common.logs import correlation_id
from common.messages import CONFIRM_STOCK, RELEASE_STOCK, RESERVE_STOCK, SAGA_EXPIRED, SAGA_REJECTED
from common.outbox import Event
from common.topics import SAGA_EVENTS, STOCK_COMMANDS
from saga.metrics import SagaMetrics
from saga.models import Saga, SagaState, StepName, StepState
from saga.moves import Move, Writes, lock_saga, lock_sagas

PAYMENT_DEADLINE_PASSED = "payment deadline passed"
STOCK_REJECTED_ORDER = "stock could not reserve the order"
MAX_RETRY_DELAY = timedelta(hours=1)  # between two automatic retries of a FAILED saga

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
    failed_retry_delay: float = 300.0  # seconds before a FAILED saga's first automatic retry


class Orchestrator:
    def __init__(self, timing: Timing, metrics: SagaMetrics | None = None) -> None:
        self.timing = timing
        self.metrics = metrics or SagaMetrics()

    # --- what the orders say -------------------------------------------------------------------------------------

    async def orders_placed(
        self, connection: BaseDBAsyncClient, placed: list[tuple[dict[str, Any], ReceivedEvent]]
    ) -> None:
        """A new saga, reserving, for each (payload, cause) of a consumer's run of order.placed events, in one round
        trip: written only if the order has none yet (the same order placed twice, under another event id, has one
        saga)."""
        writes = Writes()
        for payload, cause in placed:
            correlation_id.set(cause.correlation_id)  # the saga's, and that of the commands its move emits
            writes.add(self._placed(payload, cause))
        await self._send(connection, writes)

    def _placed(self, payload: dict[str, Any], cause: ReceivedEvent) -> Move:
        at = now()
        saga = Saga(
            order_id=uuid.UUID(payload["order_id"]),
            user_id=int(payload["user_id"]),
            state=SagaState.STARTED,
            items=[{"product_id": i["product_id"], "quantity": i["quantity"]} for i in payload["items"]],
            correlation_id=correlation_id.get(),
            created_at=at,
            updated_at=at,
        )
        move = Move(saga, new=True, at=at, received=cause)
        self._enter(move, SagaState.RESERVING)
        return move

    async def order_paid(self, connection: BaseDBAsyncClient, order_id: str, cause: ReceivedEvent) -> None:
        move = await lock_saga(connection, order_id, cause)
        if move is None:
            return
        if move.saga.state == SagaState.AWAITING_PAYMENT:
            move.finish_step(StepState.SUCCEEDED)
            self._enter(move, SagaState.CONFIRMING)
        elif _reservation_to_come(move.saga):
            move.saga.paid = True  # confirmed as soon as the reservation succeeds
        await self._save(connection, move)

    async def order_cancelled(self, connection: BaseDBAsyncClient, order_id: str, cause: ReceivedEvent) -> None:
        move = await lock_saga(connection, order_id, cause)
        if move is None:
            return
        if _rejected(move.saga):
            # Stock rejected the order while its customer cancelled it (the two arrive on different topics, in
            # either order). order_svc keeps a cancelled order cancelled whatever the saga says, so the saga ends
            # CANCELLED too; the release under way, or done, serves both.
            self._cancel_rejected(move)
            await self._save(connection, move)
            return
        if not _cancellable(move.saga):
            return
        overdue = _payment_overdue(move)  # then this cancel answers saga.expired
        reason = PAYMENT_DEADLINE_PASSED if overdue else "the order was cancelled"
        move.finish_step(StepState.ABANDONED, reason)
        self._release(move, SagaState.EXPIRED if overdue else SagaState.CANCELLED, reason)
        await self._save(connection, move)

    # --- what stock says -----------------------------------------------------------------------------------------

    async def stocks_reserved(self, connection: BaseDBAsyncClient, replies: list[tuple[str, ReceivedEvent]]) -> None:
        """The reservation made, for each (order id, cause) of a consumer's run of stock.reserved replies: their
        sagas locked with one statement, written in one round trip."""
        locked = await lock_sagas(connection, [order_id for order_id, _ in replies])
        writes = Writes()
        for order_id, cause in replies:
            move = locked.get(uuid.UUID(order_id))
            if move is None or not _awaits_reply(move, SagaState.RESERVING):
                continue  # a duplicate reply (in this run too), or the saga moved on (a cancel is releasing it)
            correlation_id.set(cause.correlation_id)
            move.received = cause
            self._reservation_made(move)
            writes.add(move)
        await self._send(connection, writes)

    def _reservation_made(self, move: Move) -> None:
        move.finish_step(StepState.SUCCEEDED)
        self._enter(move, SagaState.CONFIRMING if move.saga.paid else SagaState.AWAITING_PAYMENT)

    async def stock_rejected(
        self, connection: BaseDBAsyncClient, payload: dict[str, Any], cause: ReceivedEvent
    ) -> None:
        move = await lock_saga(connection, payload["order_id"], cause)
        if move is None or not _awaits_reply(move, SagaState.RESERVING):
            return
        reason = payload.get("reason") or "not enough stock"
        move.finish_step(StepState.FAILED, reason)
        # Stock reserves all items or none; releasing anyway undoes any partial reservation a participant made.
        self._release(move, SagaState.REJECTED, reason)
        await self._save(connection, move)

    async def stock_released(self, connection: BaseDBAsyncClient, order_id: str, cause: ReceivedEvent) -> None:
        move = await lock_saga(connection, order_id, cause)
        if move is None or not _awaits_reply(move, SagaState.RELEASING):
            return
        move.finish_step(StepState.SUCCEEDED)
        outcome = move.saga.release_outcome or SagaState.CANCELLED
        self._enter(move, outcome)
        if outcome == SagaState.REJECTED:
            # The reason is stock's, unless a failure of the release step replaced it (found by the soak: a
            # saga.rejected without one, which order_svc cannot apply).
            _tell_orders(move, SAGA_REJECTED, reason=move.saga.reason or STOCK_REJECTED_ORDER)
        await self._save(connection, move)

    async def stock_confirmed(self, connection: BaseDBAsyncClient, order_id: str, cause: ReceivedEvent) -> None:
        move = await lock_saga(connection, order_id, cause)
        if move is None or not _awaits_reply(move, SagaState.CONFIRMING):
            return
        move.finish_step(StepState.SUCCEEDED)
        self._enter(move, SagaState.COMPLETED)
        await self._save(connection, move)

    # --- deadlines and retries -----------------------------------------------------------------------------------

    async def deadline_passed(self, connection: BaseDBAsyncClient, move: Move) -> None:
        """The saga's `due_at` passed (the caller locked it, `lock_due_sagas`): ask the orders to expire the
        payment, resend the command (or wait for the last one to leave the outbox), or retry a FAILED saga."""
        self._deadline(move)
        await self._save(connection, move)

    async def retry(self, connection: BaseDBAsyncClient, move: Move) -> None:
        """An admin's retry of a FAILED saga (locked by the caller, `lock_saga`): the failed step starts over."""
        self._retry(move)
        await self._save(connection, move)

    def _retry(self, move: Move) -> None:
        resume_in = move.saga.failed_in or SagaState.RESERVING
        move.saga.failed_in, move.saga.reason = None, None
        self._enter(move, resume_in)

    # --- moving ----------------------------------------------------------------------------------------------------

    async def _save(self, connection: BaseDBAsyncClient, move: Move) -> None:
        writes = Writes()
        writes.add(move)
        await self._send(connection, writes)

    async def _send(self, connection: BaseDBAsyncClient, writes: Writes) -> None:
        """The moves' writes, then the durations of the steps they ended."""
        await writes.send(connection)
        for move in writes.moves:
            for step in move.changed_steps():
                if step.finished_at is not None:  # the move ended the step it found running
                    duration = (step.finished_at - step.started_at).total_seconds()
                    self.metrics.step_duration.labels(str(step.name), str(step.state)).observe(duration)

    def _deadline(self, move: Move) -> None:
        saga, step = move.saga, move.step
        if saga.state == SagaState.AWAITING_PAYMENT:
            # order_svc decides between the payment and the deadline; its order.cancelled or order.paid moves on.
            self.metrics.deadlines.labels("payment").inc()
            saga.due_at = None
            _tell_orders(move, SAGA_EXPIRED)
        elif saga.state == SagaState.FAILED and saga.failed_in is not None:
            self.metrics.deadlines.labels("retry").inc()
            self._retry(move)
        elif saga.state not in COMMAND_OF_STATE or step is None:
            saga.due_at = None
        elif move.command_unsent:  # the relay or the broker is away: a copy would wait behind it; not stock's wait
            saga.due_at = move.at + timedelta(seconds=self.timing.step_timeout)
        elif step.attempts >= self.timing.step_max_attempts:
            self.metrics.deadlines.labels("step").inc()
            self._fail(move, f"no reply from stock after {step.attempts} attempts")
        else:
            self.metrics.deadlines.labels("step").inc()
            self._send_command(move)

    def _cancel_rejected(self, move: Move) -> None:
        saga = move.saga
        saga.reason = f"the order was cancelled (stock had rejected it: {saga.reason})"
        if saga.state == SagaState.REJECTED:
            saga.state = SagaState.CANCELLED
        else:
            saga.release_outcome = SagaState.CANCELLED

    def _fail(self, move: Move, error: str) -> None:
        """FAILED, to be retried after as long again as the saga has lived: at least `failed_retry_delay` (stock may
        be back by then), at most MAX_RETRY_DELAY."""
        saga = move.saga
        move.finish_step(StepState.FAILED, error)
        saga.failed_in, saga.reason, saga.state = saga.state, error, SagaState.FAILED
        at_least = timedelta(seconds=self.timing.failed_retry_delay)
        lived = move.at - saga.created_at if saga.created_at is not None else at_least
        saga.due_at = move.at + min(max(lived, at_least), MAX_RETRY_DELAY)
        self.metrics.failed.inc()

    def _release(self, move: Move, outcome: SagaState, reason: str) -> None:
        move.saga.release_outcome, move.saga.reason, move.saga.failed_in = outcome, reason, None
        self._enter(move, SagaState.RELEASING)

    def _enter(self, move: Move, state: SagaState) -> None:
        saga = move.saga
        saga.state = state
        saga.due_at = None
        if state == SagaState.AWAITING_PAYMENT:
            saga.payment_deadline = move.at + timedelta(seconds=self.timing.payment_timeout)
            saga.due_at = saga.payment_deadline
            move.start_step(StepName.AWAIT_PAYMENT)
        if state in COMMAND_OF_STATE:
            move.start_step(COMMAND_OF_STATE[state][0])
            self._send_command(move)

    def _send_command(self, move: Move) -> None:
        """Send (or send again) the running step's command; its reply is due within the step timeout, doubling
        per try."""
        saga, step = move.saga, move.step
        assert step is not None, "_enter starts the step first"
        _, command = COMMAND_OF_STATE[saga.state]
        payload: dict[str, Any] = {"order_id": str(saga.order_id)}
        if command == RESERVE_STOCK:
            payload["items"] = saga.items
        event = Event(STOCK_COMMANDS, command, "order", str(saga.order_id), payload, causation_id=move.cause_id)
        move.emit(event)
        step.attempts += 1
        step.command_id = event.id
        if step.attempts > 1:
            self.metrics.resends.labels(str(step.name)).inc()
        saga.due_at = move.at + timedelta(seconds=self.timing.step_timeout * 2 ** (step.attempts - 1))


def _awaits_reply(move: Move, state: SagaState) -> bool:
    """Whether the saga waits for stock's reply to the command of `state`: in that state, or FAILED in it (a reply
    that comes after the saga gave up on the step is applied as if it had come in time). A FAILED saga is put back
    in `state`."""
    saga = move.saga
    if saga.state == SagaState.FAILED and saga.failed_in == state:
        saga.state, saga.failed_in, saga.reason = state, None, None
    return saga.state == state


def _reservation_to_come(saga: Saga) -> bool:
    """The reservation is under way, or failed and will be tried again. A payment then must be remembered: ignored
    in a FAILED saga, it left the saga to reach AWAITING_PAYMENT later without it, and at the deadline order_svc,
    the order paid, cancelled nothing: the saga waited for ever, the stock held, a paid order unconfirmed (a soak,
    seed 21: 21 orders)."""
    resumes_in = saga.failed_in or SagaState.RESERVING  # as _retry resumes it
    return saga.state == SagaState.RESERVING or (saga.state == SagaState.FAILED and resumes_in == SagaState.RESERVING)


def _rejected(saga: Saga) -> bool:
    """Rejected by stock: releasing after the rejection, or done."""
    releasing = saga.state == SagaState.RELEASING and saga.release_outcome == SagaState.REJECTED
    return releasing or saga.state == SagaState.REJECTED


def _payment_overdue(move: Move) -> bool:
    """Awaiting a payment whose deadline has passed."""
    saga = move.saga
    deadline = saga.payment_deadline
    return saga.state == SagaState.AWAITING_PAYMENT and deadline is not None and move.at >= deadline


def _cancellable(saga: Saga) -> bool:
    """Reserving or awaiting payment, or FAILED in one of them."""
    moving = (SagaState.RESERVING, SagaState.AWAITING_PAYMENT)
    return saga.state in moving or (saga.state == SagaState.FAILED and saga.failed_in in moving)


def _tell_orders(move: Move, event_type: str, **details: Any) -> None:
    saga = move.saga
    payload = {"order_id": str(saga.order_id), **{k: v for k, v in details.items() if v is not None}}
    move.emit(Event(SAGA_EVENTS, event_type, "order", str(saga.order_id), payload, move.cause_id))
