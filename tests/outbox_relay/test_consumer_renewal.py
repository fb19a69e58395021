"""A consumer whose Kafka client has broken for good replaces it and goes on consuming.

After a broker SIGKILL, aiokafka's group coordination once ended on a RuntimeError (a request written to a closed
transport): from then on every fetch raised "Unexpected error during coordination" while the process lived, and the
service consumed nothing more. The fault is composed here from outside, the same way: the coordinator's connection
is declared dead and reconnecting raises that RuntimeError."""

import asyncio
import logging

from tests.outbox_relay.conftest import applied_count, assert_exactly_once_in_order, commit_events, thing_happened
from tests.support import wait_until

EVENTS = 5


async def test_a_consumer_replaces_a_client_whose_coordination_ended(
    ledger, topic, start_relay, start_consumer, caplog
):
    consumer = await _ready_consumer(start_consumer)
    consumer.renew_after_failures = 2
    broken = consumer._kafka

    with caplog.at_level(logging.WARNING, logger="common.consumer"):
        _end_coordination(broken)
        await wait_until(lambda: _said(caplog, "Unexpected error during coordination"), timeout=30)
        await _consumes_again(ledger, topic, start_relay)

    assert consumer._kafka is not broken
    assert await _said(caplog, "keeps failing; starting a new one")


async def test_a_consumer_replaces_a_client_gone_silent(ledger, topic, start_relay, start_consumer, caplog):
    """No error, and no fetch answered: the client's fetching ended without a word (composed here by ending its
    fetcher's work). After `renew_after_silence` s a new client takes over."""
    consumer = await _ready_consumer(start_consumer)
    consumer.renew_after_silence = 3.0
    silent = consumer._kafka
    _end_fetching(silent)

    with caplog.at_level(logging.WARNING, logger="common.consumer"):
        await _consumes_again(ledger, topic, start_relay)

    assert consumer._kafka is not silent
    assert await _said(caplog, "has gone silent (no fetch answered for 3 s); starting a new one")


async def _ready_consumer(start_consumer):
    consumer = await start_consumer()
    await wait_until(_ready(consumer), timeout=30)
    return consumer


async def _consumes_again(ledger, topic, start_relay) -> None:
    """Events published now are all applied, once each, in order."""
    await start_relay()
    await commit_events([thing_happened(topic, "a", seq) for seq in range(EVENTS)])
    await wait_until(lambda: _applied(ledger, EVENTS), timeout=60)
    await assert_exactly_once_in_order(ledger, {"a": EVENTS})


def _end_coordination(client) -> None:
    coordinator = client._coordinator

    async def closed_transport() -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>; the handler is closed")

    coordinator.ensure_coordinator_known = closed_transport
    coordinator.coordinator_dead()  # wakes the coordination routine, which reconnects


def _end_fetching(client) -> None:
    """The client's fetcher stops asking the broker, and hands out nothing, without an error."""
    fetcher = client._fetcher
    fetcher._fetch_task.cancel()

    async def nothing(partitions, timeout=0, max_records=None):
        await asyncio.sleep(timeout)
        return {}

    fetcher.fetched_records = nothing


def _ready(consumer):
    async def ready() -> bool:
        return consumer.ready

    return ready


async def _said(caplog, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


async def _applied(ledger, expected: int) -> bool:
    return await applied_count(ledger) >= expected
