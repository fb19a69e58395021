"""The one retry policy for infrastructure errors: work that met one is tried again, without counting against it,
until it passes.

An infrastructure error says nothing about the work: the database cannot serve now (unreachable, restarting, out of
resources: `database_unavailable`, common/database.py), or two transactions got in each other's way (a deadlock or
a serialization failure, which the next try passes). The first is waited for a second at a time, the second tried
again after a short random pause. Anything else is the work's own failure, for the caller to count.
"""

import logging
import random

import asyncpg
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from common.database import caused_by, database_unavailable

log = logging.getLogger(__name__)

UNAVAILABLE_PAUSE = 1.0  # seconds between tries while the database cannot serve (it restarts in about that long)

_CONTENTION = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)  # PostgreSQL's 40P01 and 40001


def contended(error: BaseException) -> bool:
    return caused_by(error, _CONTENTION)


def transient(error: BaseException) -> bool:
    """Whether `error` is the infrastructure's, not the work's (see the module's docstring)."""
    return database_unavailable(error) or contended(error)


def until_it_passes(who: str, contention_pause: float = 0.1) -> AsyncRetrying:
    """Tries of a piece of work (`async for attempt in until_it_passes(...): with attempt: ...`), again for as long
    as it meets transient errors; any other error is raised at once. `who` names the worker in the log lines."""

    def pause(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return random.random() * contention_pause if error is not None and contended(error) else UNAVAILABLE_PAUSE

    def say(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if error is not None and contended(error):
            log.info("%s tries again after %s", who, type(error).__name__)
        else:
            log.warning("%s waits for the database: %s", who, error)

    return AsyncRetrying(retry=retry_if_exception(transient), wait=pause, before_sleep=say, reraise=True)
