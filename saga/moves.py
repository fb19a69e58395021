"""A saga's move, read once under its row lock and written in one statement.

The orchestrator decides in Python on a `Move`: the saga and its running step as locked (Tortoise instances used
as data), which it changes in place, the steps it starts and the events it emits. `Writes` then writes what
changed, set-based, in ONE data-modifying statement: the saga's changed columns (or the new saga), the changed
step, the new steps and the outbox rows. Every consumed event, deadline and retry moves a saga, so each
statement saved here is saved on every order, several times (DESIGN §10).

    move = await lock_saga(connection, order_id)   # one statement: the saga row locked, with its running step
    move.saga.state = ...; move.finish_step(...); move.start_step(...); move.emit(...)
    writes = Writes(); writes.add(move)            # its statement, none if nothing changed
    await writes.send(connection)                   # one round trip

A consumer's batch moves many sagas: `lock_sagas` reads them all with one statement, and `Writes` sends their
statements together, one round trip for consecutive statements of the same text (asyncpg's executemany pipelines
them; PostgreSQL still runs them one after the other, in order). The consumer's loop is serial and waits for every
round trip: at 200 orders/s a batch of 5-8 events took 10-17 ms with a read and a write per event, 8-12 ms so, and
the saga's CPU fell from 0.23-0.25 to 0.18-0.21 of a core.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from itertools import groupby
from operator import itemgetter
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.timezone import now

from common.consumer import ReceivedEvent
from common.database import PLANNED_PER_EXECUTION
from common.outbox import Event, encode_json, event_arrays, insert_events
from saga.models import Saga, SagaStep, StepName, StepState

# The columns a move may change, of the saga and of a step (the others are written once, with the new row).
_SAGA_MOVES = ("state", "paid", "release_outcome", "reason", "failed_in", "payment_deadline", "due_at")
_STEP_MOVES = ("state", "attempts", "command_id", "finished_at", "error")
_STEP_COLUMNS = ("id", "name", "state", "attempts", "command_id", "started_at", "finished_at", "error")


@dataclass(eq=False)
class Move:
    """One saga as its move leaves it: `step` is its running step (None when it has none); `started` the steps
    it began, `events` what it tells stock and the orders. What changed is what differs from the row as read."""

    saga: Saga
    step: SagaStep | None = None
    new: bool = False  # the saga row is to be inserted, if its order has none yet
    at: datetime = field(default_factory=now)  # the move's time: updated_at, started_at, finished_at, deadlines
    started: list[SagaStep] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    received: ReceivedEvent | None = None  # the message it answers (None: a deadline, an admin's retry)
    command_unsent: bool = False  # the running step's last command had not left the outbox when the saga was read

    def __post_init__(self) -> None:
        self._read = _values(self.saga, _SAGA_MOVES)
        self._read_step = self.step
        self._read_step_values = _values(self.step, _STEP_MOVES) if self.step else None

    def finish_step(self, state: StepState, error: str | None = None) -> None:
        """The running step ends (if there is one)."""
        if self.step is not None:
            self.step.state, self.step.finished_at, self.step.error = state, self.at, error
            self.step = None

    def start_step(self, name: StepName) -> SagaStep:
        """A new running step (the previous one must have finished)."""
        self.step = SagaStep(saga_id=self.saga.order_id, name=name, state=StepState.RUNNING, started_at=self.at)
        self.started.append(self.step)
        return self.step

    def emit(self, event: Event) -> None:
        self.events.append(event)

    @property
    def cause_id(self) -> str | None:
        """The causation id of what it emits: the id of the message it answers."""
        return str(self.received.id) if self.received is not None else None

    def changed_columns(self) -> list[str]:
        return [column for column in _SAGA_MOVES if getattr(self.saga, column) != self._read[column]]

    def changed_steps(self) -> list[SagaStep]:
        step = self._read_step
        if step is None or _values(step, _STEP_MOVES) == self._read_step_values:
            return []
        return [step]

    def changes_anything(self) -> bool:
        return self.new or bool(self.changed_columns() or self.changed_steps() or self.started or self.events)


def _values(row: Any, columns: tuple[str, ...]) -> dict[str, Any]:
    return {column: getattr(row, column) for column in columns}


# --- reading ---------------------------------------------------------------------------------------------------------

# The saga row locked with its running step (the partial unique index keeps it to one). One statement has one
# snapshot, taken before it waits for the lock: when another move of this saga commits meanwhile, the lock returns
# the saga's new version (PostgreSQL re-reads the locked row) but the step joined to it as it was before that move.
# `moved_meanwhile` tells so (the locked version is not the one this statement's snapshot sees); reading again,
# the lock now held, gives the step that goes with the saga. Planned per execution: a plan made for all values scanned
# every saga (common/database.py). `command_unsent`: the running step's last command is still in the outbox.
_READ = f"""{PLANNED_PER_EXECUTION}
SELECT sagas.*, step.id AS step_id, step.name AS step_name, step.state AS step_state,
    step.attempts AS step_attempts, step.command_id AS step_command_id, step.started_at AS step_started_at,
    step.finished_at AS step_finished_at, step.error AS step_error,
    sagas.xmin <> (SELECT seen.xmin FROM sagas AS seen WHERE seen.order_id = sagas.order_id) AS moved_meanwhile,
    EXISTS (SELECT FROM outbox WHERE outbox.id = step.command_id AND outbox.published_at IS NULL) AS command_unsent
FROM sagas LEFT JOIN saga_steps AS step ON step.saga_id = sagas.order_id AND step.state = 'running'
"""
_LOCK = _READ + "WHERE sagas.order_id = $1 FOR UPDATE OF sagas"
# Several sagas locked in one global order (their ids), so that two transactions locking some of the same cannot
# deadlock.
_LOCK_MANY = _READ + "WHERE sagas.order_id = ANY($1::uuid[]) ORDER BY sagas.order_id FOR UPDATE OF sagas"
_LOCK_DUE = _READ + "WHERE sagas.due_at <= now() ORDER BY sagas.due_at LIMIT $1 FOR UPDATE OF sagas SKIP LOCKED"


async def lock_saga(
    connection: BaseDBAsyncClient, order_id: str | uuid.UUID, received: ReceivedEvent | None = None
) -> Move | None:
    """The order's saga locked (`FOR UPDATE`) until the caller's transaction ends, with its running step, for a
    move answering `received`; None if the order has no saga."""
    key = order_id if isinstance(order_id, uuid.UUID) else uuid.UUID(order_id)
    moves = await _locked(connection, _LOCK, [key])
    if not moves:
        return None
    moves[0].received = received
    return moves[0]


async def lock_sagas(connection: BaseDBAsyncClient, order_ids: list[str]) -> dict[uuid.UUID, Move]:
    """The orders' sagas locked (`FOR UPDATE`, in order of their ids) until the caller's transaction ends, each with
    its running step, by order id; an order without a saga is left out."""
    keys = sorted({uuid.UUID(order_id) for order_id in order_ids})
    return {move.saga.order_id: move for move in await _locked(connection, _LOCK_MANY, [keys])}


async def lock_due_sagas(connection: BaseDBAsyncClient, limit: int) -> list[Move]:
    """Up to `limit` sagas whose `due_at` passed, locked, skipping those another transaction holds."""
    return await _locked(connection, _LOCK_DUE, [limit])


async def _locked(connection: BaseDBAsyncClient, sql: str, parameters: list) -> list[Move]:
    """One statement; one more for each saga that another move changed while this one waited for its lock."""
    moves = []
    for row in await connection.execute_query_dict(sql, parameters):
        if row["moved_meanwhile"]:
            (row,) = await connection.execute_query_dict(_LOCK, [row["order_id"]])
        moves.append(_move(row))
    return moves


def _move(row: dict[str, Any]) -> Move:
    """The row's saga and step as Tortoise builds instances from the rows of its own queries."""
    step = None
    if row["step_id"] is not None:
        step = SagaStep._init_from_db(saga_id=row["order_id"], **{c: row[f"step_{c}"] for c in _STEP_COLUMNS})
    return Move(Saga._init_from_db(**row), step, command_unsent=row["command_unsent"])


# --- writing ---------------------------------------------------------------------------------------------------------

# A move's writes in one statement: `saga` inserts or updates the saga row; `finished` updates its step; `started`
# inserts the new steps; `events` the outbox rows. Steps and events are written only with their saga row, so an
# order placed twice (another event id) gets one saga, one step and one command. The sub-statements of one WITH
# run in no fixed order: `started` reads `finished` so that the step finishing leaves the one-running-step index
# before the new running step enters it. `s.id = ANY(...)` repeats the join condition so that the step is found
# through the primary key whatever the table's statistics say: before the first ANALYZE the planner hash-joined
# the ids to a scan of every step ever written, once per move.
_INSERT_SAGA = """
INSERT INTO sagas (order_id, user_id, state, items, paid, release_outcome, reason, failed_in, correlation_id,
    payment_deadline, due_at, created_at, updated_at)
VALUES ($1, {}, {}, {}::jsonb, {}, {}, {}, {}, {}, {}, {}, {}, {})
ON CONFLICT (order_id) DO NOTHING RETURNING order_id
"""
_UPDATE_STEP = """
UPDATE saga_steps AS s SET state = u.state, attempts = u.attempts, command_id = u.command_id,
    finished_at = u.finished_at, error = u.error
FROM unnest({0}::bigint[], {1}::text[], {2}::int[], {3}::uuid[], {4}::timestamptz[], {5}::text[])
    AS u (id, state, attempts, command_id, finished_at, error)
WHERE s.id = u.id AND s.id = ANY({0}::bigint[]) RETURNING s.id
"""
_INSERT_STEPS = """
INSERT INTO saga_steps (saga_id, name, state, attempts, command_id, started_at)
SELECT saga.order_id, n.name, n.state, n.attempts, n.command_id, n.started_at
FROM saga{}, unnest({}::text[], {}::text[], {}::int[], {}::uuid[], {}::timestamptz[])
    WITH ORDINALITY AS n (name, state, attempts, command_id, started_at, position)
ORDER BY n.position
"""


class Writes:
    """The statements of several moves (`moves`, in order), made as each move is decided (the correlation id of the
    events it emits is the one of that moment) and sent together, once, by `send`."""

    def __init__(self) -> None:
        self.moves: list[Move] = []
        self._statements: list[tuple[str, list]] = []

    def add(self, move: Move) -> None:
        """The statement writing what `move` changed; none if it changed nothing."""
        self.moves.append(move)
        if move.changes_anything():
            move.saga.updated_at = move.at
            self._statements.append(_statement(move))

    async def send(self, connection: BaseDBAsyncClient) -> None:
        """Every statement, in order, on the caller's transaction: one round trip per run of the same text."""
        for sql, run in groupby(self._statements, key=itemgetter(0)):
            parameters = [statement_parameters for _, statement_parameters in run]
            if len(parameters) == 1:
                await connection.execute_query(sql, parameters[0])
            else:
                await connection.execute_many(sql, parameters)
        self._statements.clear()


class _Parameters(list):
    def add(self, *values: Any) -> list[str]:
        """Their placeholders ($n), in order."""
        self.extend(values)
        return [f"${n}" for n in range(len(self) - len(values) + 1, len(self) + 1)]


def _statement(move: Move) -> tuple[str, list]:
    parameters = _Parameters([move.saga.order_id])  # $1
    parts = {"saga": _insert_saga(move.saga, parameters) if move.new else _update_saga(move, parameters)}
    changed_steps = move.changed_steps()
    if changed_steps:
        parts["finished"] = _UPDATE_STEP.format(*parameters.add(*_step_arrays(changed_steps, ("id", *_STEP_MOVES))))
    if move.started:
        after = ", (SELECT count(*) FROM finished) AS finished_first" if changed_steps else ""
        arrays = _step_arrays(move.started, ("name", "state", "attempts", "command_id", "started_at"))
        parts["started"] = _INSERT_STEPS.format(after, *parameters.add(*arrays))
    if move.events:
        first = len(parameters) + 1
        parameters.add(*event_arrays(move.events))
        parts["events"] = insert_events(first, when="EXISTS (SELECT FROM saga)")
    if messages := _messages(move):
        parts["messages"] = _INSERT_MESSAGES.format(
            *parameters.add(*(list(column) for column in zip(*messages, strict=True)))
        )
    ctes = ",\n".join(f"{name} AS ({sql})" for name, sql in parts.items())
    return f"WITH {ctes}\nSELECT order_id FROM saga", parameters


_INSERT_MESSAGES = """
INSERT INTO saga_messages (saga_id, direction, event_id, event_type, topic, causation_id, at)
SELECT saga.order_id, m.direction, m.event_id, m.event_type, m.topic, m.causation_id, m.at
FROM saga, unnest({}::text[], {}::uuid[], {}::text[], {}::text[], {}::uuid[], {}::timestamptz[])
    WITH ORDINALITY AS m (direction, event_id, event_type, topic, causation_id, at, position)
ORDER BY m.position
"""


def _messages(move: Move) -> list[tuple[str, uuid.UUID, str, str, uuid.UUID | None, datetime]]:
    """The saga's message log for this move: the message it answered, then what it sent."""
    messages: list[tuple[str, uuid.UUID, str, str, uuid.UUID | None, datetime]] = []
    if (received := move.received) is not None:
        messages.append(("received", received.id, received.type, received.topic, None, move.at))
    cause = received.id if received is not None else None
    messages += [("sent", e.id, e.event_type, e.topic, cause, move.at) for e in move.events]
    return messages


def _insert_saga(saga: Saga, parameters: _Parameters) -> str:
    values = (
        saga.user_id,
        saga.state,
        encode_json(saga.items),
        saga.paid,
        saga.release_outcome,
        saga.reason,
        saga.failed_in,
        saga.correlation_id,
        saga.payment_deadline,
        saga.due_at,
        saga.created_at,
        saga.updated_at,
    )
    return _INSERT_SAGA.format(*parameters.add(*map(_db, values)))


def _update_saga(move: Move, parameters: _Parameters) -> str:
    columns = [*move.changed_columns(), "updated_at"]
    placeholders = parameters.add(*(_db(getattr(move.saga, column)) for column in columns))
    assignments = ", ".join(f"{column} = {value}" for column, value in zip(columns, placeholders, strict=True))
    return f"UPDATE sagas SET {assignments} WHERE order_id = $1 RETURNING order_id"


def _step_arrays(steps: list[SagaStep], columns: tuple[str, ...]) -> list[list]:
    """One parameter array per column."""
    return [[_db(getattr(step, column)) for step in steps] for column in columns]


def _db(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value
