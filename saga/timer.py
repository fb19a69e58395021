"""Deadlines: step timeouts and payment deadlines live in `sagas.due_at`, so they survive restarts. Any number of
saga instances look for due sagas; SKIP LOCKED gives each due saga to one of them."""

import asyncio
import logging

from sanic import Sanic
from tortoise.transactions import in_transaction

from common.service import run_in_background
from saga.moves import lock_due_sagas
from saga.orchestrator import Orchestrator

log = logging.getLogger(__name__)

DB = "saga"


async def handle_due_sagas(orchestrator: Orchestrator, batch: int = 50) -> int:
    """Move every saga whose deadline passed; returns how many were due."""
    async with in_transaction(DB) as connection:
        due = await lock_due_sagas(connection, batch)
        for move in due:
            await orchestrator.deadline_passed(connection, move)
    return len(due)


async def keep_watching_deadlines(orchestrator: Orchestrator, interval: float) -> None:
    while True:
        try:
            while await handle_due_sagas(orchestrator):
                pass
        except Exception as error:  # e.g. "the database system is shutting down": the timer must outlive it
            log.warning("looking for due sagas failed: %r", error)
        await asyncio.sleep(interval)


def register_deadline_timer(app: Sanic, orchestrator: Orchestrator, interval: float) -> None:
    run_in_background(app, "deadline_timer", lambda: keep_watching_deadlines(orchestrator, interval))
