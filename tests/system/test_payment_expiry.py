"""An order not paid in time: the saga ends EXPIRED, the stock is released and the order cancelled."""

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.cluster import ADMIN, Cluster, eventually, new_customer, sign_in
from tests.system.conftest import create_product, order_body


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[Cluster]:
    running = await Cluster(service_env={"PAYMENT_TIMEOUT": "2", "SAGA_TIMER_INTERVAL": "0.1"}).start()
    yield running
    running.stop()


async def test_unpaid_order_expires(cluster):
    async with httpx.AsyncClient(base_url=cluster.api, timeout=30) as api:
        admin = await sign_in(api, ADMIN)
        product_id = await create_product(api, admin, quantity=5)
        customer = await new_customer(api, "slow-payer@example.com")
        order = (await api.post("/orders/", json=order_body(product_id, quantity=2), headers=customer)).json()

        async def saga() -> dict:
            return (await api.get(f"/sagas/{order['_id']}", headers=customer)).json()

        await eventually(saga, lambda s: s.get("state") == "AWAITING_PAYMENT")
        expired = await eventually(saga, lambda s: s.get("state") == "EXPIRED", timeout=30)
        assert [step["step"] for step in expired["steps"]] == ["reserve", "await_payment", "release"]
        assert expired["steps"][1]["state"] == "abandoned"

        cancelled = await eventually(
            lambda: api.get(f"/orders/{order['_id']}", headers=customer), lambda r: r.json()["status"] == "cancelled"
        )
        assert cancelled.json()["status_reason"] == "payment deadline passed"
        item = (await api.get(f"/inventory/{product_id}", headers=admin)).json()
        assert (item["available_quantity"], item["reserved_quantity"]) == (5, 0)
        # Too late to pay now.
        late = await api.put(f"/orders/{order['_id']}/status", json={"status": "paid"}, headers=customer)
        assert late.status_code == 409
