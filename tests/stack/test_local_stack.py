"""`make run` end to end: the whole local stack as a newcomer starts it, the seed's first steps through the
gateway, a clean stop, and a second start that finds the data of the first."""

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
    finally:
        assert stack.stop() in (0, 143)  # honcho answers SIGTERM with 128 + 15
    assert not any(port_open(port) for port in ports_of(description)), "a process outlived the stack"

    assert stack.start()["postgres_data"] == description["postgres_data"]
    try:
        with httpx.Client(base_url=stack.url, timeout=10) as client:
            tokens = client.post("/auth/login", data={"username": CUSTOMER["email"], "password": "Password123"})
            assert tokens.status_code == 200
            headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
            assert len(client.get("/users/me", headers=headers).json()["addresses"]) == 1
    finally:
        stack.stop()
