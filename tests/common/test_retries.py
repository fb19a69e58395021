"""The one retry policy (common/retries.py): infrastructure errors are tried again until the work passes; the work's
own errors are raised at once, for the caller to count."""

import asyncpg
import pytest

from common.retries import transient, until_it_passes


class Flaky:
    """Work that fails with `errors`, one per try, then passes."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.tries = 0

    async def __call__(self) -> str:
        self.tries += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


async def run(work: Flaky) -> str:
    async for attempt in until_it_passes("a test", contention_pause=0.001):
        with attempt:
            return await work()
    raise AssertionError("unreachable")


async def test_contention_and_an_absent_database_are_tried_again_until_the_work_passes() -> None:
    deadlock, serialization = asyncpg.DeadlockDetectedError("deadlock"), asyncpg.SerializationError("serialization")
    absent = OSError("connection refused")
    work = Flaky(deadlock, serialization, absent)
    assert await run(work) == "done"
    assert work.tries == 4


async def test_the_works_own_error_is_raised_at_once() -> None:
    work = Flaky(ValueError("a bad payload"))
    with pytest.raises(ValueError, match="a bad payload"):
        await run(work)
    assert work.tries == 1


def test_an_infrastructure_error_is_recognised_under_the_errors_wrapping_it() -> None:
    try:
        try:
            raise asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already")
        except asyncpg.PostgresError as driver_error:
            raise RuntimeError("the ORM's wrapper") from driver_error
    except RuntimeError as wrapped:
        assert transient(wrapped)
    assert not transient(asyncpg.UniqueViolationError("duplicate key"))
