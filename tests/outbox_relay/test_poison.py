"""Poison at either end is set aside, visible, and does not stop what comes behind it."""

import json
import uuid

import asyncpg
from aiokafka import AIOKafkaProducer

from common.dead_letters import inbox_dead_letters, redrive_inbox, redrive_producer
from common.errors import Conflict
from common.topics import started
from outbox_relay.postgres_outbox import PostgresOutbox
from tests.outbox_relay.conftest import commit_events, record_effect, thing_happened
from tests.support import wait_until

TWO_MEGABYTES = "x" * (2 * 1024 * 1024)


async def test_unpublishable_event_is_dead_lettered_and_its_aggregate_moves_on(
    ledger, ledger_url, topic, start_relay, start_consumer
):
    await start_relay(relay_max_attempts=3)
    await start_consumer()
    await commit_events([thing_happened(topic, "poisoned", 0, blob=TWO_MEGABYTES)])
    await commit_events([thing_happened(topic, "poisoned", 1), thing_happened(topic, "healthy", 0)])

    await wait_until(lambda: _applied(ledger, 2), timeout=60)
    rows = await ledger.fetch("SELECT aggregate_id, seq FROM applied ORDER BY applied_order")
    assert sorted(tuple(row) for row in rows) == [("healthy", 0), ("poisoned", 1)]
    outbox = PostgresOutbox(ledger_url)
    await outbox.open()
    try:
        [letter] = await outbox.dead_letters()
        assert letter["aggregate_id"] == "poisoned"
        assert letter["attempts"] == 3
        assert "MessageSizeTooLarge" in letter["last_error"]

        # An operator repairs the payload and re-drives it: it is published after all.
        await ledger.execute("UPDATE outbox_dead_letter SET payload = '{\"seq\": 0}'::jsonb")
        assert await outbox.redrive(letter["id"]) == 1
        await ledger.execute("NOTIFY outbox")
        await wait_until(lambda: _applied(ledger, 3), timeout=30)
        assert (await outbox.stats()).dead_letters == 0
    finally:
        await outbox.close()


async def test_failing_handler_dead_letters_the_event_and_the_partition_moves_on(
    ledger, ledger_url, kafka_bootstrap, topic, start_relay, start_consumer
):
    unlucky = {13}

    async def fails_on_thirteen(event, connection):
        if event.payload["seq"] in unlucky:
            raise ValueError("thirteen is unlucky")
        await record_effect(event, connection)

    await start_relay()
    await start_consumer(handler=fails_on_thirteen, max_attempts=3)
    events = [thing_happened(topic, "a", seq) for seq in range(20)]
    await commit_events(events)
    await wait_until(lambda: _applied(ledger, 19), timeout=30)
    seqs = [row["seq"] for row in await ledger.fetch("SELECT seq FROM applied ORDER BY applied_order")]
    assert seqs == [seq for seq in range(20) if seq != 13]
    [letter] = await inbox_dead_letters(ledger)
    assert (letter["event_id"], letter["attempts"]) == (str(events[13].id), 3)
    assert "thirteen is unlucky" in letter["error"]
    assert await inbox_dead_letters(ledger, event_type="another.type") == []

    # Its cause fixed, an operator re-drives it: it is consumed again, applied once, and the dead letter is gone.
    unlucky.clear()
    producer = await started(lambda: redrive_producer(kafka_bootstrap))
    try:
        assert await redrive_inbox(ledger, producer, str(events[13].id)) == [str(events[13].id)]
        await wait_until(lambda: _applied(ledger, 20), timeout=30)
        assert await inbox_dead_letters(ledger) == []
        assert await redrive_inbox(ledger, producer, event_type=letter["headers"]["event_type"]) == []  # none left
    finally:
        await producer.stop()


async def test_an_event_a_rule_refuses_is_dead_lettered_at_once(ledger, topic, start_relay, start_consumer):
    """A domain error is the rule's answer, and would be the same on every try: no retries, no back-off."""
    tries = 0

    async def refuses_the_first(event, connection):
        nonlocal tries
        if event.payload["seq"] == 0:
            tries += 1
            raise Conflict("the stock would exceed its limit", product_id="p-1")
        await record_effect(event, connection)

    await start_relay()
    await start_consumer(handler=refuses_the_first, max_attempts=5)
    events = [thing_happened(topic, "a", seq) for seq in range(3)]
    await commit_events(events)
    await wait_until(lambda: _applied(ledger, 2), timeout=30)
    [letter] = await inbox_dead_letters(ledger)
    # Tried twice: in its fetch's batch, then alone to tell it from the others (max_attempts would allow six).
    assert (letter["event_id"], letter["attempts"], tries) == (str(events[0].id), 1, 2)
    assert letter["error"] == "Conflict: the stock would exceed its limit"


async def test_an_out_of_resources_database_is_waited_for_not_blamed_on_the_event(
    ledger, topic, start_relay, start_consumer
):
    """PostgreSQL's class 53 (too many connections, disk full) says nothing about the event: the consumer waits
    and applies it once the server recovers, however many times that takes, and dead-letters nothing."""
    refusals = 4  # more than max_attempts

    async def server_out_of_connections_for_a_while(event, connection):
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already")
        await record_effect(event, connection)

    await start_relay()
    await start_consumer(handler=server_out_of_connections_for_a_while, max_attempts=3)
    await commit_events([thing_happened(topic, "a", seq) for seq in range(3)])
    await wait_until(lambda: _applied(ledger, 3), timeout=60)
    assert refusals == 0
    assert await ledger.fetchval("SELECT count(*) FROM inbox_dead_letter") == 0


async def test_undecodable_message_is_dead_lettered(ledger, topic, kafka_bootstrap, start_consumer):
    await start_consumer()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"not json at all", key=b"a", partition=0)
        good = thing_happened(topic, "a", 0)
        headers = [("event_id", str(uuid.uuid4()).encode()), ("event_type", b"thing.happened"), ("aggregate_id", b"a")]
        await producer.send_and_wait(topic, json.dumps(good.payload).encode(), key=b"a", headers=headers, partition=0)
    finally:
        await producer.stop()
    await wait_until(lambda: _applied(ledger, 1), timeout=30)
    [letter] = await ledger.fetch("SELECT event_id, error, value FROM inbox_dead_letter")
    assert letter["value"] == "not json at all"
    assert letter["event_id"].startswith(f"{topic}/0/0@")  # no event id: named by its position and broker time


async def _applied(ledger, expected: int) -> bool:
    return await ledger.fetchval("SELECT count(*) FROM applied") >= expected
