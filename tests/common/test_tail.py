"""`python -m common tail TOPIC` against the real broker (Apache Kafka), run as a user runs it: a subprocess.

Events are produced as the relay produces them (tests/support.py); what the command prints is checked against an
independent read of the topic (partition, offset, key, headers, value).
"""

import asyncio
import json
import os
import re
import signal
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.topics import ALL_TOPICS, PARTITIONS, ensure_topics
from stack.infra import free_port
from tests.support import envelope_producer

ROOT = Path(__file__).resolve().parents[2]
READY = "Ctrl-C stops"  # the end of the line the command writes to stderr once it is reading
ENVELOPE = {"event_id", "event_type", "aggregate_id", "correlation_id", "occurred_at"}


@dataclass(frozen=True)
class Shown:
    partition: int
    offset: int
    key: str
    headers: dict[str, str]
    value: object


def parse_one_line(line: str) -> Shown:
    """`partition=P offset=O key=K headers={...} value=...` (headers JSON; value JSON, or text)."""
    match = re.match(r"partition=(\d+) offset=(\d+) key=(\S+) headers=", line)
    assert match, line
    headers, end = json.JSONDecoder().raw_decode(line, match.end())
    assert line[end:].startswith(" value="), line
    text = line[end + len(" value=") :]
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return Shown(int(match[1]), int(match[2]), match[3], headers, value)


def parse_pretty(output: str) -> list[Shown]:
    """The default layout: `partition P  offset O  key K`, `  name: value` header lines, the value, a blank line."""
    shown = []
    for block in output.strip("\n").split("\n\n"):
        first, *rest = block.split("\n")
        match = re.fullmatch(r"partition (\d+)  offset (\d+)  key (\S+)", first)
        assert match, block
        count = next((i for i, line in enumerate(rest) if not line.startswith("  ")), len(rest))
        headers = dict(line.strip().split(": ", 1) for line in rest[:count])
        body = "\n".join(rest[count:])  # the value's own lines (indented JSON) come after the headers
        try:
            value = json.loads(body)
        except ValueError:
            value = body
        shown.append(Shown(int(match[1]), int(match[2]), match[3], headers, value))
    return shown


def environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    """The shell's environment without the broker's address or a DATA_DIR, plus `variables`."""
    env = {key: value for key, value in os.environ.items() if key not in ("KAFKA_BOOTSTRAP_SERVERS", "DATA_DIR")}
    env.update({"PYTHONPATH": str(ROOT), "LOG_JSON": "false", "DATA_DIR": str(tmp_path / "no-stack"), **variables})
    return env


async def start_tail(env: dict[str, str], cwd: Path, *arguments: str) -> asyncio.subprocess.Process:
    # cwd: a directory without a `.env` (the repository's could name another broker). SIGINT as a terminal gives it:
    # pytest started as a background job by a shell without job control (`make test &` in a script) ignores SIGINT;
    # the command would inherit that, and the Ctrl-C test could not stop it (two CI runs of this kind failed so).
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "common",
        "tail",
        *arguments,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def run_tail(env: dict[str, str], cwd: Path, *arguments: str) -> tuple[int, str, str]:
    process = await start_tail(env, cwd, *arguments)
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode, out.decode(), err.decode()


async def wait_until_reading(process: asyncio.subprocess.Process) -> str:
    """The command's stderr up to its "reading" line (it has found where to start)."""
    seen = []
    async with asyncio.timeout(30):
        while not seen or READY not in seen[-1]:
            line = (await process.stderr.readline()).decode()
            assert line, f"tail exited before reading: {''.join(seen)}"
            seen.append(line)
    return "".join(seen)


async def new_topic(kafka_bootstrap: str) -> str:
    topic = f"tail-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, (topic,))
    return topic


async def read_all(kafka_bootstrap: str, topic: str, count: int) -> list[Shown]:
    """The first `count` messages of `topic`, read independently of the command."""
    reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    await reader.start()
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    reader.assign(partitions)
    await reader.seek_to_beginning(*partitions)
    found: list[Shown] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < count:
                for records in (await reader.getmany(timeout_ms=500)).values():
                    for r in records:
                        try:
                            value = json.loads(r.value)
                        except ValueError:
                            value = r.value.decode()
                        headers = {name: raw.decode() for name, raw in r.headers}
                        found.append(Shown(r.partition, r.offset, r.key.decode(), headers, value))
    finally:
        await reader.stop()
    return found


async def produce_in_batches(kafka_bootstrap: str, topic: str, batches: int, size: int) -> None:
    """`batches` record batches of `size` records on every partition."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False, linger_ms=50)
    await producer.start()
    try:
        for batch in range(batches):
            sent = [
                await producer.send(topic, json.dumps({"old": batch}).encode(), key=b"old", partition=i % PARTITIONS)
                for i in range(size * PARTITIONS)
            ]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()


def position(shown: Shown) -> tuple[int, int]:
    return shown.partition, shown.offset


# ------------------------------------------------------------------------------------------------------------ tests


async def test_from_beginning_shows_partition_offset_key_headers_and_value(kafka_bootstrap: str, tmp_path: Path):
    topic = await new_topic(kafka_bootstrap)
    order = str(uuid.uuid4())
    async with envelope_producer(kafka_bootstrap) as send:
        await send(topic, "order.placed", order, {"order_id": order, "items": [{"product_id": "p1", "quantity": 2}]})
        await send(topic, "order.paid", order, {"order_id": order, "status": "paid"})
        await send(topic, "user.created", "user-7", {"user_id": 7, "email": "ü@example.com"})
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    await producer.send_and_wait(topic, b"not json\nat all", key=b"raw", headers=[("source", b"test")])
    await producer.stop()
    expected = sorted(await read_all(kafka_bootstrap, topic, 4), key=position)
    env = environment(tmp_path, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)

    code, out, err = await run_tail(env, tmp_path, topic, "--from-beginning", "--max", "4", "--one-line")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 4, out
    shown = sorted((parse_one_line(line) for line in lines), key=position)
    one_line = [replace(s, value=s.value.replace("\n", "\\n")) if isinstance(s.value, str) else s for s in expected]
    assert shown == one_line
    events = [s for s in shown if s.key != "raw"]
    assert all(set(s.headers) == ENVELOPE for s in events)
    assert [s.headers["event_type"] for s in events if s.key == order] == ["order.placed", "order.paid"]
    assert {s.value["email"] for s in events if s.key == "user-7"} == {"ü@example.com"}
    (raw,) = [s for s in shown if s.key == "raw"]
    assert raw.value == "not json\\nat all"  # text, on its one line
    assert "from the beginning" in err and f"on {kafka_bootstrap}" in err

    # The default layout: the same messages, the values as indented JSON (the text one as it is).
    code, out, err = await run_tail(env, tmp_path, topic, "--from-beginning", "--max", "4")
    assert code == 0, err
    assert '{\n  "order_id": ' in out
    assert sorted(parse_pretty(out), key=position) == expected


async def test_by_default_only_new_messages_are_shown(kafka_bootstrap: str, tmp_path: Path):
    topic = await new_topic(kafka_bootstrap)
    await produce_in_batches(kafka_bootstrap, topic, batches=2, size=5)
    async with envelope_producer(kafka_bootstrap) as send:
        await send(topic, "order.placed", "old-order", {"old": True})
        env = environment(tmp_path, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)
        process = await start_tail(env, tmp_path, topic, "--max", "2", "--one-line")
        try:
            started = await wait_until_reading(process)
            assert "new messages" in started
            await send(topic, "order.placed", "new-order", {"order_id": "new-order"})
            await send(topic, "order.paid", "new-order", {"order_id": "new-order", "status": "paid"})
            out, err = await asyncio.wait_for(process.communicate(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, err
    shown = [parse_one_line(line) for line in out.decode().splitlines()]
    assert [(s.key, s.headers["event_type"], s.value) for s in shown] == [
        ("new-order", "order.placed", {"order_id": "new-order"}),
        ("new-order", "order.paid", {"order_id": "new-order", "status": "paid"}),
    ]
    assert shown[0].partition == shown[1].partition and shown[1].offset == shown[0].offset + 1
    # After the 10 old messages of its partition, and the old event if it went to the same one.
    assert shown[0].offset >= 10


async def test_ctrl_c_stops_it_quietly(kafka_bootstrap: str, tmp_path: Path):
    topic = await new_topic(kafka_bootstrap)
    process = await start_tail(environment(tmp_path, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap), tmp_path, topic)
    try:
        await wait_until_reading(process)
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 130
    assert b"Traceback" not in err, err.decode()


async def test_an_unknown_topic_is_an_error_naming_the_known_ones(kafka_bootstrap: str, tmp_path: Path):
    env = environment(tmp_path, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)
    code, out, err = await run_tail(env, tmp_path, "no-such-topic", "--from-beginning")
    assert code == 2
    assert out == ""
    assert "unknown topic 'no-such-topic'" in err
    assert all(topic in err for topic in ALL_TOPICS)
    assert "Traceback" not in err


async def test_the_broker_is_found_in_the_local_stacks_stack_json(kafka_bootstrap: str, tmp_path: Path):
    topic = await new_topic(kafka_bootstrap)
    async with envelope_producer(kafka_bootstrap) as send:
        await send(topic, "product.created", "p-1", {"_id": "p-1", "name": "Laptop"})
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # As stack/__main__.py's write_stack_json writes it (the other fields do not matter here).
    (data_dir / "stack.json").write_text(json.dumps({"pid": 1, "kafka_bootstrap_servers": kafka_bootstrap}))
    env = environment(tmp_path, DATA_DIR=str(data_dir))

    code, out, err = await run_tail(env, tmp_path, topic, "--from-beginning", "--max", "1", "--one-line")
    assert code == 0, err
    (shown,) = [parse_one_line(line) for line in out.splitlines()]
    assert (shown.key, shown.value) == ("p-1", {"_id": "p-1", "name": "Laptop"})
    assert f"from {data_dir / 'stack.json'}" in err


async def test_without_a_broker_address_it_says_where_it_looked(tmp_path: Path):
    code, out, err = await run_tail(environment(tmp_path), tmp_path, "order-events")
    assert code == 2 and out == ""
    assert "KAFKA_BOOTSTRAP_SERVERS" in err and str(tmp_path / "no-stack" / "stack.json") in err
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["0", "-3"])
async def test_max_must_be_positive(value: str, tmp_path: Path):
    code, _, err = await run_tail(environment(tmp_path), tmp_path, "order-events", "--max", value)
    assert code == 2 and "--max" in err


async def test_a_stale_stack_json_is_a_clear_error(tmp_path: Path):
    """The local stack has stopped (its broker's port is closed): a one-line error, with the hint, after the
    connection timeout."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = free_port()  # nothing listens there
    (data_dir / "stack.json").write_text(json.dumps({"kafka_bootstrap_servers": f"127.0.0.1:{port}"}))
    code, out, err = await run_tail(environment(tmp_path, DATA_DIR=str(data_dir)), tmp_path, "order-events")
    assert code == 1 and out == ""
    assert f"cannot reach the broker at 127.0.0.1:{port}" in err and "make run" in err
    assert "Traceback" not in err
