"""Schemathesis against each service's OpenAPI document, on the running system: no generated request, however
odd, gets a 500. It sends them as admin, so that they reach the handlers behind the role guards."""

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.cluster import ADMIN, Cluster

SERVICES = ("user_svc", "catalog_svc", "stock_svc", "order_svc", "saga", "outbox_relay")
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[Cluster]:
    running = await Cluster().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
async def admin_token(cluster: Cluster) -> str:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{cluster.api}/auth/login", data=ADMIN)
        response.raise_for_status()
        return response.json()["access_token"]


@pytest.mark.parametrize("service", SERVICES)
async def test_no_generated_request_gets_a_server_error(cluster, admin_token, service, tmp_path):
    address = cluster.parts[service].address
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{address}/api/v1/docs/{service}/openapi.json",
        "--url",
        address,
        "--checks",
        "not_a_server_error",
        "--header",
        f"Authorization: Bearer {admin_token}",
        "--max-examples",
        "25",
        "--generation-deterministic",
        "--report-dir",
        str(tmp_path),
    ]
    result = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
