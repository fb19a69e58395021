"""Several instances behind one route (STACK_SCALE): the real Caddy takes them in turn and leaves out one that is
down, so a killed instance costs no failed request."""

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from stack.gateway import caddy_config
from stack.infra import free_port
from tests.stack.test_gateway import caddy, echo_app, serving


@pytest.fixture(scope="module")
async def balanced(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(echo_app("first")) as first, serving(echo_app("second")) as second:
        dead = f"http://127.0.0.1:{free_port()}"  # an instance that was killed: nothing listens there
        routes = {"/api/v1/both": [first, second], "/api/v1/one_down": [first, dead]}
        async with caddy(routes, tmp_path_factory.mktemp("balanced"), timeout=5, max_body_bytes=1024) as client:
            yield client


async def test_instances_take_turns(balanced: httpx.AsyncClient) -> None:
    answered = Counter([(await balanced.get("/api/v1/both")).json()["upstream"] for _ in range(10)])
    assert answered == {"first": 5, "second": 5}


async def test_an_instance_that_is_down_costs_no_request(balanced: httpx.AsyncClient) -> None:
    responses = [await balanced.post("/api/v1/one_down", content=b"{}") for _ in range(10)]
    assert [response.status_code for response in responses] == [200] * 10
    assert {response.json()["upstream"] for response in responses} == {"first"}


def test_one_instance_gets_no_balancing_or_health_checks() -> None:
    config = caddy_config({"/api/v1/x": ["http://127.0.0.1:1"]}, "127.0.0.1", 2, 1, 1, storage_dir=Path("."))
    routes = config["apps"]["http"]["servers"]["gateway"]["routes"]
    (proxy,) = [h for route in routes for h in route.get("handle", []) if h["handler"] == "reverse_proxy"]
    assert "health_checks" not in proxy  # nothing to choose between: no idle probing
