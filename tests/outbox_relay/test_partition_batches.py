"""A claim whose records fill two batches of one partition: when the first batch fails for good, the second is not
sent either. Sent anyway, it would land before the first one's retry, and an aggregate with records in both would
be consumed out of order (its later events applied before its earlier ones)."""

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from tests.outbox_relay.conftest import assert_exactly_once_in_order, commit_events, thing_happened
from tests.support import wait_until

# Two of these do not fit one batch of the relay's (256 KiB): an aggregate's three events fill two batches.
BLOB = "x" * (150 * 1024)


def refusing_the_first_batch(made: list[AIOKafkaProducer]) -> type[AIOKafkaProducer]:
    """The producer, except that the broker refuses the first batch any of them is given, for good (a non-retriable
    error, as for a batch the broker will not take). Every producer made is appended to `made`."""
    refused: list[tuple[str, int]] = []

    class Producer(AIOKafkaProducer):
        def __init__(self, **options: object) -> None:
            super().__init__(**options)
            made.append(self)

        async def send_batch(self, batch, topic, *, partition):
            if not refused:
                refused.append((topic, partition))
                refusal = asyncio.get_running_loop().create_future()
                refusal.set_exception(KafkaError("the broker refused the batch (injected)"))
                return refusal
            return await super().send_batch(batch, topic, partition=partition)

    return Producer


async def test_a_failed_batch_holds_back_the_later_batches_of_its_partition(ledger, topic, start_relay, start_consumer):
    await start_consumer()
    await commit_events([thing_happened(topic, "a", seq, blob=BLOB if seq < 2 else "") for seq in range(3)])
    producers: list[AIOKafkaProducer] = []
    await start_relay(make_producer=refusing_the_first_batch(producers))

    await wait_until(lambda: _applied(ledger, 3), timeout=30)
    await asyncio.sleep(0.5)  # anything applied late or twice shows up too
    await assert_exactly_once_in_order(ledger, {"a": 3})
    # The refusal counted against the first record only (each publication counts one attempt); the relay then
    # started a new idempotent producer, whose sequence numbers start anew (the broker would refuse the old one's
    # next batch of the partition as out of sequence).
    rows = await ledger.fetch("SELECT (payload->>'seq')::int AS seq, attempts, last_error FROM outbox")
    assert {row["seq"]: row["attempts"] for row in rows} == {0: 2, 1: 1, 2: 1}
    assert [row["seq"] for row in rows if row["last_error"]] == [0]
    assert len(producers) == 2


async def _applied(ledger, expected: int) -> bool:
    return await ledger.fetchval("SELECT count(*) FROM applied") >= expected
