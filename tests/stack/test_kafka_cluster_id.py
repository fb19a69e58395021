"""The local Kafka cluster's id: made once per DATA_DIR/kafka, in Kafka's format, never starting with "-" (which
Kafka's storage tool would read as an option: one start in 64 failed so), and a cluster keeps its size."""

import uuid
from pathlib import Path

import pytest

from stack.kafka import nodes

LEADING_DASH = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))  # base64url "-AAAA...": 0xF8's first six bits are 62


def test_an_id_that_would_start_with_a_dash_is_drawn_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter([LEADING_DASH, uuid.UUID(int=1)])
    monkeypatch.setattr(nodes.uuid, "uuid4", lambda: next(drawn))

    cluster_id = nodes._cluster_id(tmp_path, brokers=1)

    assert cluster_id == "AAAAAAAAAAAAAAAAAAAAAQ" and len(cluster_id) == 22
    assert nodes._cluster_id(tmp_path, brokers=1) == cluster_id  # kept


def test_a_cluster_keeps_its_size(tmp_path: Path) -> None:
    nodes._cluster_id(tmp_path, brokers=1)
    with pytest.raises(RuntimeError, match="holds a Kafka cluster of 1 broker"):
        nodes._cluster_id(tmp_path, brokers=3)
