"""`python -m common tail TOPIC`: print a topic's messages (partition, offset, key, headers, value) as they come.

It finds the broker where the services do (KAFKA_BOOTSTRAP_SERVERS, else the running local stack's stack.json) and
shows the envelope's headers and the JSON value readably; `kcat -b ADDRESS -C -t TOPIC` reads the same topics. It only
reads: no consumer group (every partition assigned by hand), no commits, so it can run next to the services without
taking part in their rebalances. From the end by default (only messages produced from now on).
"""

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.topics import ALL_TOPICS, started

CONNECT_TIMEOUT = 10.0  # seconds to wait for the broker
NO_KEY = "(none)"


class TailError(Exception):
    """A failure to report in one line, without a traceback, and the process's exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class TailSettings(BaseSettings):
    """Where the broker is: KAFKA_BOOTSTRAP_SERVERS when set (as the services read it), else the local stack's
    DATA_DIR/stack.json (as `make run` writes it), so that `python -m common tail TOPIC` just works next to it."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str | None = None
    data_dir: Path = Path(".data")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", help=f"one of the system's topics: {', '.join(ALL_TOPICS)}")
    parser.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest retained message (default: only new ones)"
    )
    parser.add_argument("--max", type=int, metavar="N", help="stop after N messages (default: run until Ctrl-C)")
    parser.add_argument(
        "--one-line", action="store_true", help="one line per message (default: the value as pretty JSON)"
    )


def bootstrap_servers(settings: TailSettings) -> tuple[str, str]:
    """(the broker's address, where it came from): KAFKA_BOOTSTRAP_SERVERS, else DATA_DIR/stack.json."""
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS"
    path = settings.data_dir / "stack.json"
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise TailError(
            f"no broker address: set KAFKA_BOOTSTRAP_SERVERS, or start the local stack (`make run`), which writes "
            f"it to DATA_DIR/stack.json ({path} does not exist)",
            exit_code=2,
        ) from None
    except (OSError, ValueError) as error:
        raise TailError(f"cannot read {path}: {error}", exit_code=2) from None
    address = document.get("kafka_bootstrap_servers") if isinstance(document, dict) else None
    if not isinstance(address, str) or not address:
        raise TailError(f"{path} names no kafka_bootstrap_servers; set KAFKA_BOOTSTRAP_SERVERS", exit_code=2)
    return address, str(path)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="backslashreplace")


def _value(data: bytes | None) -> tuple[object, bool]:
    """(the decoded JSON, True), or (the value as text, False) when it is not JSON."""
    if data is None:
        return "(no value)", False
    try:
        return json.loads(data), True
    except ValueError:  # UnicodeDecodeError included
        return _text(data), False


def render(record: ConsumerRecord, one_line: bool) -> str:
    """A message as printed: partition, offset, key, headers, value (pretty JSON unless `one_line`)."""
    key = NO_KEY if record.key is None else _text(record.key)
    headers = {name: _text(value) for name, value in record.headers or ()}
    value, is_json = _value(record.value)
    if one_line:
        shown = json.dumps(value, ensure_ascii=False) if is_json else str(value).replace("\n", "\\n")
        heads = json.dumps(headers, ensure_ascii=False)
        return f"partition={record.partition} offset={record.offset} key={key} headers={heads} value={shown}"
    lines = [f"partition {record.partition}  offset {record.offset}  key {key}"]
    lines += [f"  {name}: {text}" for name, text in headers.items()]
    lines.append(json.dumps(value, indent=2, ensure_ascii=False) if is_json else str(value))
    return "\n".join(lines) + "\n"


def in_order(batches: Iterable[list[ConsumerRecord]]) -> list[ConsumerRecord]:
    """The messages of one poll, in produce order across partitions (each partition's stay in offset order)."""
    return sorted((record for batch in batches for record in batch), key=lambda r: (r.timestamp, r.partition, r.offset))


async def tail(
    servers: str, source: str, topic: str, *, from_beginning: bool, limit: int | None, one_line: bool
) -> None:
    def reader() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    try:
        consumer = await started(reader, CONNECT_TIMEOUT)
    except (KafkaConnectionError, OSError) as error:
        hint = " (is the local stack, `make run`, still running?)" if source.endswith("stack.json") else ""
        raise TailError(f"cannot reach the broker at {servers} (from {source}){hint}: {error}") from None
    try:
        known = await consumer.topics()
        if topic not in known:
            raise TailError(unknown_topic(topic, known, servers), exit_code=2)
        numbers = await partitions_of(servers, topic)
        if not numbers:
            raise TailError(f"the broker at {servers} gives no partitions for {topic}")
        partitions = [TopicPartition(topic, number) for number in sorted(numbers)]
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
            starts = {partition: await consumer.position(partition) for partition in partitions}
        else:
            starts = await consumer.end_offsets(partitions)
            for partition, offset in starts.items():
                consumer.seek(partition, offset)
        where = " ".join(f"{partition.partition}:{offset}" for partition, offset in starts.items())
        print(
            f"tail {topic} on {servers} (from {source}), {'from the beginning' if from_beginning else 'new messages'}, "
            f"partition:offset {where}; Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        shown = 0
        while limit is None or shown < limit:
            batches = await consumer.getmany(timeout_ms=1000)
            for record in in_order(batches.values()):
                print(render(record, one_line), flush=True)
                shown += 1
                if limit is not None and shown >= limit:
                    break
    except KafkaError as error:
        raise TailError(f"the broker at {servers} failed: {error!r}") from None
    finally:
        await consumer.stop()


async def partitions_of(servers: str, topic: str) -> list[int]:
    """The topic's partition numbers, as the broker describes them (a consumer without a subscription has no
    metadata of its own to ask)."""
    admin = await started(lambda: AIOKafkaAdminClient(bootstrap_servers=servers), CONNECT_TIMEOUT)
    try:
        (description,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [partition["partition"] for partition in description["partitions"]]


def unknown_topic(topic: str, known: set[str], servers: str) -> str:
    """The error for a topic the broker does not have, naming the topics there are."""
    if topic in ALL_TOPICS:
        return f"topic {topic} does not exist on the broker at {servers} yet (`python -m common create-topics`)"
    others = sorted(known - set(ALL_TOPICS))
    also = f"; also on the broker: {', '.join(others)}" if others else ""
    return f"unknown topic {topic!r}: the system's topics are {', '.join(ALL_TOPICS)} (common/topics.py){also}"


def main(arguments: argparse.Namespace) -> int:
    """Run the command; returns the exit code: 0, 1 (broker failure), 2 (no broker address, unknown topic)."""
    if arguments.max is not None and arguments.max < 1:
        print("error: --max needs a positive number", file=sys.stderr)
        return 2
    # The consumer's INFO lines (its assignment) would be noise between the messages.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
    try:
        servers, source = bootstrap_servers(TailSettings())
        asyncio.run(
            tail(
                servers,
                source,
                arguments.topic,
                from_beginning=arguments.from_beginning,
                limit=arguments.max,
                one_line=arguments.one_line,
            )
        )
    except TailError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `... | head`: the reader is gone; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0
