"""STACK_SCALE: how many instances of each process the local stack runs, each on its own port behind the gateway."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from stack.plan import plan
from stack.settings import StackSettings

EXTERNAL = {  # no embedded server: the plan alone is under test
    "user_database_url": "postgres://u@db:5432/users",
    "stock_database_url": "postgres://u@db:5432/stock",
    "order_database_url": "postgres://u@db:5432/orders",
    "saga_database_url": "postgres://u@db:5432/sagas",
    "kafka_bootstrap_servers": "broker:9092",
    "mongo_url": "mongodb://mongo:27017",
}


def planned(tmp_path: Path, scale: str):
    return plan(StackSettings(_env_file=None, data_dir=tmp_path, stack_scale=scale, **EXTERNAL), tmp_path)


def test_counts_for_every_process_and_by_name(tmp_path: Path) -> None:
    stack = planned(tmp_path, "2,saga=3")
    names = [part.name for part in stack.parts if part.probe_url and part.name != "gateway"]
    assert names == [
        *("user_svc.1", "user_svc.2", "catalog_svc.1", "catalog_svc.2", "stock_svc.1", "stock_svc.2"),
        *("order_svc.1", "order_svc.2", "saga.1", "saga.2", "saga.3", "outbox_relay.1", "outbox_relay.2"),
        *("operations.1", "operations.2"),
    ]
    addresses = [part.address for part in stack.parts if part.name.startswith("saga.")]
    assert len(set(addresses)) == 3  # a port each

    config = json.loads((tmp_path / "gateway" / "caddy.json").read_text())
    routes = config["apps"]["http"]["servers"]["gateway"]["routes"]
    upstreams = {
        route["match"][0]["path"][0]: [u["dial"] for u in handler["upstreams"]]
        for route in routes
        for handler in route.get("handle", [])
        if handler["handler"] == "reverse_proxy"
    }
    assert upstreams["/api/v1/sagas"] == [address.removeprefix("http://") for address in addresses]
    assert len(upstreams["/api/v1/orders"]) == 2


def test_one_of_each_by_default(tmp_path: Path) -> None:
    names = [part.name for part in planned(tmp_path, "").parts if part.probe_url]
    assert "saga" in names and "saga.1" not in names


@pytest.mark.parametrize("scale", ["0", "two", "saga=", "saga=-1", "=2"])
def test_a_scale_that_is_not_counts_is_refused(scale: str) -> None:
    with pytest.raises(ValidationError, match="STACK_SCALE"):
        StackSettings(_env_file=None, stack_scale=scale)


def test_a_process_that_does_not_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="sagas"):
        planned(tmp_path, "sagas=2")
