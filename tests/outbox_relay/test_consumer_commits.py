"""A consumer commits its offsets in the background, at most every `commit_interval`, not once per fetch in its fetch
loop; what it applied since its last commit is committed before its partitions move to another member and before
it stops, so that neither hands applied events to be delivered again; what the broker does not take is tried again."""

from aiokafka.errors import KafkaTimeoutError

from common.lag import consumer_lag
from tests.outbox_relay.conftest import applied_count, commit_events, thing_happened
from tests.support import wait_until

SPREAD = 16  # aggregates per round: every partition gets some
ONLY_WHEN_ASKED = 3600.0  # a commit interval no test outlasts: after the first commit, only a flush commits


async def test_applied_events_are_committed_when_the_consumer_stops(ledger, topic, start_relay, start_consumer):
    await start_relay()
    consumer = await start_consumer()
    consumer.commit_interval = ONLY_WHEN_ASKED
    await _apply_rounds(ledger, topic, 2)
    assert await _committed(consumer, topic) < 2 * SPREAD  # the second round waits for the interval

    await consumer.stop()
    assert await _committed(consumer, topic) == 2 * SPREAD


async def test_applied_events_are_committed_before_their_partitions_move(ledger, topic, start_relay, start_consumer):
    await start_relay()
    first = await start_consumer()
    first.commit_interval = ONLY_WHEN_ASKED
    await _apply_rounds(ledger, topic, 2)
    assert await _committed(first, topic) < 2 * SPREAD

    second = await start_consumer()  # the same group: some of the first one's partitions move to it
    await wait_until(lambda: _holds_partitions(second), timeout=60)
    assert await _committed(first, topic) == 2 * SPREAD
    await commit_events([thing_happened(topic, f"2-{n}", 0) for n in range(SPREAD)])
    await wait_until(lambda: _applied(ledger, 3 * SPREAD), timeout=30)
    duplicates = second.metrics.registry.get_sample_value(
        "consumer_events_total", {"consumer": second.name, "topic": topic, "outcome": "duplicate"}
    )
    assert not duplicates  # it read its partitions from where the first one had got to


async def test_offsets_the_broker_did_not_take_are_committed_later(ledger, topic, start_relay, start_consumer):
    """Commits refused for a while (the broker restarting: failure scenario 2 left a group's lag for good when the
    refused offsets were dropped and no later event came to commit past them) are tried again until taken."""
    await start_relay()
    consumer = await start_consumer()
    refusals = 3
    commit = consumer._kafka.commit

    async def refusing_commit(offsets):
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise KafkaTimeoutError()
        await commit(offsets)

    consumer._kafka.commit = refusing_commit
    await _apply_rounds(ledger, topic, 1)
    await wait_until(lambda: _all_committed(consumer, topic, SPREAD), timeout=30)
    assert refusals == 0


async def _all_committed(consumer, topic: str, expected: int) -> bool:
    return await _committed(consumer, topic) == expected


async def _apply_rounds(ledger, topic: str, rounds: int) -> None:
    """`rounds` rounds of SPREAD events, each published and applied before the next is written."""
    for round_ in range(rounds):
        await commit_events([thing_happened(topic, f"{round_}-{n}", 0) for n in range(SPREAD)])
        await wait_until(lambda expected=(round_ + 1) * SPREAD: _applied(ledger, expected), timeout=30)


async def _committed(consumer, topic: str) -> int:
    """Messages of `topic` the consumer's group has committed, over every partition (the broker's view)."""
    lags = await consumer_lag(consumer._bootstrap_servers)
    return sum(lag.committed for lag in lags if (lag.group, lag.topic) == (consumer.name, topic))


async def _holds_partitions(consumer) -> bool:
    return bool(consumer._kafka.assignment())


async def _applied(ledger, expected: int) -> bool:
    return await applied_count(ledger) >= expected
