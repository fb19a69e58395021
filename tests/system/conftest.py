"""System tests: every process of the system, started from the local stack's plan, talked to through the gateway."""

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.cluster import ADMIN, Cluster, eventually, sign_in


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[Cluster]:
    running = await Cluster(service_env={"SAGA_TIMER_INTERVAL": "0.1"}).start()
    yield running
    running.stop()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cluster.api, timeout=30) as client:
        yield client


@pytest.fixture
async def admin(api: httpx.AsyncClient) -> dict[str, str]:
    return await sign_in(api, ADMIN)


async def create_product(api: httpx.AsyncClient, admin: dict[str, str], quantity: int, price: float = 10.0) -> str:
    body = {"name": "Gadget", "description": "", "category": "Test", "price": price, "quantity": quantity}
    response = await api.post("/products/", json=body, headers=admin)
    response.raise_for_status()
    product_id = response.json()["_id"]
    await eventually(lambda: api.get(f"/inventory/{product_id}", headers=admin), lambda r: r.status_code == 200)
    return product_id


def order_body(product_id: str, quantity: int = 1, price: float = 10.0) -> dict:
    address = {"line1": "1 Test Street", "city": "Testville", "state": "TS", "postal_code": "1", "country": "Test"}
    return {"items": [{"product_id": product_id, "quantity": quantity, "price": price}], "shipping_address": address}
