"""Real servers for the whole test session, on free ports: PostgreSQL, Apache Kafka, MongoDB-wire.

No mocks: every integration test talks to these. Each server's log is kept under the session's temp dir.
"""

import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from common.tokens import TokenIssuer, generate_private_key_pem
from stack.infra import (
    ServerProcess,
    free_port,
    init_postgres,
    mongo_command,
    postgres_command,
    remove_postgres,
    require_tools,
)
from stack.kafka.nodes import start_cluster
from tests.support import envelope_producer


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    # Private (mode 0700): as root, PostgreSQL's cluster then lives in a directory of nobody's (stack/infra.py).
    directory = Path(tempfile.mkdtemp(prefix="shop-tests-"))
    require_tools()
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(servers_dir: Path) -> Iterator[str]:
    """`postgres://...` of a PostgreSQL server; append `/<database>` (services create their database)."""
    data_dir = servers_dir / "postgres"
    init_postgres(data_dir)
    port = free_port()
    server = ServerProcess(
        "postgres",
        postgres_command(data_dir, port, durable=False),
        port,
        servers_dir / "postgres.log",
        stop_signal=signal.SIGINT,
    ).start()
    yield f"postgres://postgres@127.0.0.1:{port}"
    server.stop()
    remove_postgres(data_dir)


@pytest.fixture(scope="session")
def kafka_bootstrap(servers_dir: Path) -> Iterator[str]:
    (broker,), bootstrap = start_cluster(servers_dir / "kafka", servers_dir)
    yield bootstrap
    broker.stop()


@pytest.fixture(scope="session")
def mongo_url(servers_dir: Path) -> Iterator[str]:
    port = free_port()
    server = ServerProcess("mongo", mongo_command(servers_dir / "mongo", port), port, servers_dir / "mongo.log").start()
    yield f"mongodb://127.0.0.1:{port}/?directConnection=true"
    server.stop()


@pytest.fixture
async def publish(kafka_bootstrap: str) -> AsyncIterator[Callable[[str, str, str, dict], Awaitable[None]]]:
    """`publish(topic, event_type, key, payload)`: an event produced as the relay produces them."""
    async with envelope_producer(kafka_bootstrap) as send:
        yield send


@pytest.fixture(scope="session")
def issuer() -> TokenIssuer:
    """Stands in for user_svc in the other services' tests: signs the tokens they verify."""
    return TokenIssuer(generate_private_key_pem(), timedelta(minutes=15), timedelta(days=1))
