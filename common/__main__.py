"""Set-up steps for containers and scripts, from the shared library (the compose stack runs them once each):

    python -m common create-topics [--timeout S]   create the system's topics on KAFKA_BOOTSTRAP_SERVERS
    python -m common signing-key PATH              generate the RS256 signing key at PATH, unless it exists

Both are idempotent and exit non-zero when they fail. And a way to look at a topic (see common/tail.py; kcat works
too), and at the events a service's consumer set aside (common/dead_letters.py):

    python -m common tail TOPIC [--from-beginning] [--max N] [--one-line]
    python -m common dead-letters --database URL [--limit N] [--redrive EVENT_ID|all]
"""

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

import asyncpg
from aiokafka.errors import KafkaError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from common import dead_letters, tail
from common.database import asyncpg_dsn
from common.logs import configure_logging
from common.settings import ServiceSettings
from common.tokens import ensure_signing_key
from common.topics import ALL_TOPICS, ensure_topics, started

log = logging.getLogger("common")


async def create_topics(bootstrap_servers: str, timeout: float) -> None:
    """ensure_topics, tried again until `timeout` s: a broker that has just started may still refuse (no
    controller yet, a request timing out)."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type((KafkaError, OSError, RuntimeError)),
        wait=wait_exponential(multiplier=0.5, max=5.0),
        stop=stop_after_delay(timeout),
        reraise=True,
    ):
        with attempt:
            await ensure_topics(bootstrap_servers, ALL_TOPICS, timeout=timeout)


async def show_dead_letters(arguments: argparse.Namespace, bootstrap_servers: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(arguments.database))
    try:
        if arguments.redrive is None:
            for letter in await dead_letters.inbox_dead_letters(connection, arguments.limit):
                print(json.dumps(letter, default=str))
            return
        event_id = None if arguments.redrive == "all" else arguments.redrive
        producer = await started(lambda: dead_letters.redrive_producer(bootstrap_servers))
        try:
            sent = await dead_letters.redrive_inbox(connection, producer, event_id)
        finally:
            await producer.stop()
    finally:
        await connection.close()
    print(f"{len(sent)} dead letters sent back to their topics: {', '.join(sent) or 'none'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m common", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    topics = commands.add_parser("create-topics", help="create the topics of common/topics.py that do not exist")
    topics.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the broker (120)")
    key = commands.add_parser("signing-key", help="generate the JWT signing key at PATH unless it exists")
    key.add_argument("path", type=Path)
    tail.add_arguments(
        commands.add_parser("tail", help="print a topic's messages: partition, offset, key, headers, value")
    )
    letters = commands.add_parser("dead-letters", help="list a service's inbox dead letters, or re-drive them")
    letters.add_argument("--database", required=True, help="the service's database URL, e.g. postgres://.../orders")
    letters.add_argument("--limit", type=int, default=100, help="how many to list, oldest first (100)")
    letters.add_argument("--redrive", metavar="EVENT_ID|all", help="send back to their topics, to be consumed again")
    arguments = parser.parse_args(argv)

    settings = ServiceSettings()
    configure_logging(settings.log_level, settings.log_json)
    if arguments.command == "create-topics":
        asyncio.run(create_topics(settings.kafka_bootstrap_servers, arguments.timeout))
        log.info("topics ready on %s: %s", settings.kafka_bootstrap_servers, ", ".join(ALL_TOPICS))
    elif arguments.command == "tail":
        sys.exit(tail.main(arguments))
    elif arguments.command == "dead-letters":
        asyncio.run(show_dead_letters(arguments, settings.kafka_bootstrap_servers))
    else:
        existed = arguments.path.exists()
        ensure_signing_key(arguments.path)
        log.info("signing key %s: %s", "kept" if existed else "generated", arguments.path)


main()
