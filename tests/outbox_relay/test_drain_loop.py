"""A drain loop outlives whatever goes wrong inside it. One that ended on an error it did not expect (asyncpg's
InternalClientError, after PostgreSQL restarted: failure scenario 7) left its outbox unpublished, silently, while
the relay still answered /ready."""

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg

from outbox_relay.publisher import Publisher
from outbox_relay.relay import Relay
from outbox_relay.settings import RelaySettings


@dataclass
class Batch:
    records: list = field(default_factory=list)


class FailingOutbox:
    """An outbox whose first claims raise `errors` in turn; later claims find it empty."""

    name = "failing"
    is_open = True

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.claims = 0
        self.recovered = asyncio.Event()

    async def open(self) -> None:
        pass

    async def wait_for_events(self, timeout: float) -> None:
        await asyncio.sleep(0.01)

    @asynccontextmanager
    async def claim(self, aggregates: int, limit: int):
        self.claims += 1
        if self.errors:
            raise self.errors.pop(0)
        self.recovered.set()
        yield Batch()


async def test_a_drain_loop_retries_an_error_it_did_not_expect_and_logs_it(caplog):
    outbox = FailingOutbox(RuntimeError("a bug"), asyncpg.InternalClientError("another operation is in progress"))
    relay = Relay([outbox], Publisher("127.0.0.1:9"), RelaySettings())
    with caplog.at_level(logging.WARNING, logger="outbox_relay.relay"):
        loop = asyncio.create_task(relay._keep_draining(outbox))
        try:
            await asyncio.wait_for(outbox.recovered.wait(), timeout=10)
        finally:
            loop.cancel()
    assert outbox.claims >= 3
    failures = [(record.levelname, record.exc_info is not None) for record in caplog.records]
    assert failures[:2] == [("ERROR", True), ("WARNING", False)]  # the bug with its traceback; the outage a line
