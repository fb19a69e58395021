"""`make run` end to end: the whole local stack as a newcomer starts it, the seed's first steps through the
gateway, a clean stop, and a second start that finds the data of the first (PostgreSQL's rows, and Kafka's topics,
messages and consumer offsets); and a machine without Java, told what to install before anything starts."""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from common.topics import PARTITIONS, PRODUCT_EVENTS, USER_EVENTS
from stack.infra import cluster_location, free_port, port_open, remove_postgres

ROOT = Path(__file__).resolve().parents[2]
CUSTOMER = {
    "email": "customer@example.com",
    "password": "Password123",
    "first_name": "Example",
    "last_name": "Customer",
    "phone": "555-123-4567",
}


class LocalStack:
    def __init__(self, data_dir: Path, gateway_port: int) -> None:
        self.data_dir, self.gateway_port = data_dir, gateway_port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}/api/v1"

    def start(self, timeout: float = 90) -> dict:
        environment = {**os.environ, "DATA_DIR": str(self.data_dir), "GATEWAY_PORT": str(self.gateway_port)}
        environment.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stack"],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        description = self.data_dir / "stack.json"
        while not description.exists():
            assert self.process.poll() is None, f"the stack exited; see {self.data_dir / 'logs'}"
            assert time.monotonic() < deadline, "the stack did not become ready"
            time.sleep(0.2)
        return json.loads(description.read_text())

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Private (mode 0700), as a clone in root's home would be: as root, PostgreSQL's cluster lives elsewhere.
    directory = Path(tempfile.mkdtemp(prefix="shop-stack-"))
    yield directory
    remove_postgres(directory / "postgres")
    shutil.rmtree(directory, ignore_errors=True)


def ports_of(description: dict) -> list[int]:
    addresses = [component["address"] for component in description["components"] if not component["external"]]
    return [int(address.rsplit(":", 1)[1].split("/")[0]) for address in addresses]


def test_run_walk_through_stop_and_restart(data_dir):
    stack = LocalStack(data_dir, free_port())
    description = stack.start()
    # DATA_DIR/postgres, or as root (this DATA_DIR is private, mode 0700) a directory of nobody's outside it.
    assert description["postgres_data"] == str(cluster_location(data_dir / "postgres"))
    assert (Path(description["postgres_data"]) / "PG_VERSION").exists()
    try:
        with httpx.Client(base_url=stack.url, timeout=10) as client:
            registered = client.post("/auth/register", json=CUSTOMER)
            assert registered.status_code == 201, registered.text
            tokens = client.post("/auth/login", data={"username": CUSTOMER["email"], "password": "Password123"})
            headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
            assert client.get("/users/me", headers=headers).json() == registered.json()
            address = {
                "line1": "123 Example Street",
                "line2": "Apt 4B",
                "city": "Example City",
                "state": "EX",
                "postal_code": "12345",
                "country": "Example Country",
                "is_default": True,
            }
            assert client.post("/users/me/addresses", json=address, headers=headers).status_code == 201
            assert client.get("/nothing").status_code == 404
            admin = client.post("/auth/login", data={"username": "admin@example.com", "password": "Admin12345"})
            product = {"name": "Kept", "description": "", "category": "Test", "price": 1.0, "quantity": 5}
            authorised = {"Authorization": f"Bearer {admin.json()['access_token']}"}
            product_id = client.post("/products/", json=product, headers=authorised).json()["_id"]
            # stock_svc consumed product.created (and committed its offset) once the inventory exists.
            deadline = time.monotonic() + 30
            while client.get(f"/inventory/{product_id}", headers=authorised).status_code != 200:
                assert time.monotonic() < deadline, "product.created never reached stock_svc"
                time.sleep(0.2)
    finally:
        assert stack.stop() in (0, 143)  # honcho answers SIGTERM with 128 + 15
    assert not any(port_open(port) for port in ports_of(description)), "a process outlived the stack"

    again = stack.start()
    assert again["postgres_data"] == description["postgres_data"]
    try:
        kept = asyncio.run(kafka_kept(again["kafka_bootstrap_servers"]))
        assert CUSTOMER["email"] in kept["user-events"], kept  # the first run's user.created
        assert kept["stock_svc offsets on product-topic"] >= 1, kept
        with httpx.Client(base_url=stack.url, timeout=10) as client:
            tokens = client.post("/auth/login", data={"username": CUSTOMER["email"], "password": "Password123"})
            assert tokens.status_code == 200
            headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
            assert len(client.get("/users/me", headers=headers).json()["addresses"]) == 1
    finally:
        stack.stop()


async def kafka_kept(bootstrap_servers: str) -> dict:
    """What the broker of a second run holds of the first: user-events' messages, stock_svc's committed offsets."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await reader.start()
    try:
        users = [TopicPartition(USER_EVENTS, partition) for partition in range(PARTITIONS)]
        reader.assign(users)
        await reader.seek_to_beginning(*users)
        batches = await reader.getmany(timeout_ms=2000)
        values = [record.value.decode() for records in batches.values() for record in records]
    finally:
        await reader.stop()
    group = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id="stock_svc", enable_auto_commit=False)
    await group.start()
    try:
        products = [TopicPartition(PRODUCT_EVENTS, partition) for partition in range(PARTITIONS)]
        offsets = sum([await group.committed(partition) or 0 for partition in products])
    finally:
        await group.stop()
    return {"user-events": " ".join(values), "stock_svc offsets on product-topic": offsets}


def test_without_java_nothing_starts_and_the_message_says_what_to_install(tmp_path: Path) -> None:
    environment = {
        **{name: value for name, value in os.environ.items() if name != "KAFKA_BOOTSTRAP_SERVERS"},
        "JAVA_HOME": str(tmp_path / "no-java"),  # where the launcher looks first
        "DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_PORT": str(free_port()),
    }
    done = subprocess.run(
        [sys.executable, "-m", "stack"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("stack:")]
    assert line.startswith("stack: cannot start: the local Kafka broker needs Java 17 or newer"), line
    assert "apt-get install openjdk-17-jre-headless" in line
    assert not (tmp_path / "data" / "postgres").exists() and not (tmp_path / "data" / "kafka").exists()
