"""Scenario 6: poison on every topic of common.topics.ALL_TOPICS, produced with aiokafka directly, on every
partition: garbage bytes without envelope headers, and a valid envelope with an undecodable payload (not JSON,
and JSON nested too deep for the decoder); on each
consumed topic also a decodable event of a handled type whose payload its handlers reject. Every consumer of the
topic dead-letters each of them (inbox_dead_letter) and moves on: orders placed afterwards complete."""

import json
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from common.topics import ALL_TOPICS, PARTITIONS
from order_svc.handlers import order_consumers
from order_svc.settings import OrderSettings
from saga.handlers import consumers as saga_consumers
from saga.orchestrator import Orchestrator, Timing
from saga.settings import SagaSettings
from stock_svc.handlers import stock_consumers
from stock_svc.settings import StockSettings
from tests.cluster import eventually, new_customer
from tests.failure.support import Burst, change_orders, check_invariants, email, query, wait_for_sagas
from tests.system.conftest import create_product, order_body

DATABASE_OF = {"stock_svc": "STOCK_DATABASE_URL", "order_svc": "ORDER_DATABASE_URL", "saga": "SAGA_DATABASE_URL"}


def system_consumers() -> dict[str, list]:
    """topic -> the system's consumers of it (EventConsumer objects, built as the services build them, not started)."""
    timing = Timing(payment_timeout=1, step_timeout=1, step_max_attempts=1)
    built = [
        *stock_consumers(StockSettings(_env_file=None)),
        *order_consumers(OrderSettings(_env_file=None)),
        *saga_consumers(SagaSettings(_env_file=None), Orchestrator(timing)),
    ]
    return {topic: [c for c in built if topic in c._topics] for topic in ALL_TOPICS}


@pytest.mark.scenario(number=6, title="poison message on every topic", fault="garbage + bad payloads on 7 topics")
async def test_poison_is_dead_lettered_and_orders_still_complete(cluster, api, admin, scenario):
    consumers = system_consumers()
    producer = AIOKafkaProducer(bootstrap_servers=cluster.stack.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    poison: dict[str, list[tuple[int, int]]] = {}  # topic -> (partition, offset) of each poison message
    try:
        for topic in ALL_TOPICS:
            sent = []
            for partition in range(PARTITIONS):
                garbage = await producer.send_and_wait(
                    topic, b"\x00\xffnot an event", key=b"poison", partition=partition
                )
                envelope = [("event_id", str(uuid.uuid4()).encode()), ("event_type", b"poison.test")]
                undecodable = await producer.send_and_wait(
                    topic, b"{not json", key=b"poison", headers=envelope, partition=partition
                )
                nested = await producer.send_and_wait(  # valid JSON text, but too deeply nested to decode
                    topic, b"[" * 100_000 + b"]" * 100_000, key=b"poison", headers=envelope, partition=partition
                )
                sent += [(partition, garbage.offset), (partition, undecodable.offset), (partition, nested.offset)]
            handled = set.intersection(*(set(c.handlers) for c in consumers[topic])) if consumers[topic] else set()
            if handled:  # decodable, of a type every consumer of the topic handles, with a payload none accepts
                headers = [("event_id", str(uuid.uuid4()).encode()), ("event_type", min(handled).encode())]
                invalid = await producer.send_and_wait(
                    topic, json.dumps({"unexpected": True}).encode(), key=b"poison", headers=headers, partition=0
                )
                sent.append((0, invalid.offset))
            poison[topic] = sent
    finally:
        await producer.stop()
    scenario.inject(f"{sum(map(len, poison.values()))} poison messages on {len(poison)} topics")
    unconsumed = [topic for topic in ALL_TOPICS if not consumers[topic]]
    scenario.measure(
        poison_per_topic={topic: len(sent) for topic, sent in poison.items()},
        topics_without_consumer=unconsumed,
    )

    # Every consumer of every topic sets each poison message aside.
    expected = {
        (consumer.name, DATABASE_OF[consumer.database], topic, partition, offset)
        for topic, sent in poison.items()
        for consumer in consumers[topic]
        for partition, offset in sent
    }

    async def dead_lettered() -> set:
        found = set()
        for variable in set(DATABASE_OF.values()):
            rows = await query(cluster, variable, 'SELECT consumer, topic, partition, "offset" FROM inbox_dead_letter')
            found |= {(r["consumer"], variable, r["topic"], r["partition"], r["offset"]) for r in rows}
        return found

    letters = await eventually(dead_lettered, lambda found: expected <= found, timeout=120, interval=0.5)
    scenario.measure(dead_letters=len(expected & letters))

    # ... and the system goes on: orders placed now complete, payments confirm.
    product_id = await create_product(api, admin, quantity=100)
    customer = await new_customer(api, email("after-poison"))
    scenario.orders = 60
    burst = await Burst(api, customer, [order_body(product_id)] * scenario.orders, concurrency=30).run()
    assert burst.outcomes == {201: scenario.orders}
    await wait_for_sagas(cluster, burst.order_ids, {"AWAITING_PAYMENT": scenario.orders})
    assert await change_orders(api, customer, burst.order_ids[:20], "paid") == {200: 20}
    await wait_for_sagas(cluster, burst.order_ids, {"AWAITING_PAYMENT": scenario.orders - 20, "COMPLETED": 20})
    await check_invariants(cluster, scenario)
