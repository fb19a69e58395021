"""What every benchmark needs: its own real servers on free ports, and a description of the machine."""

import asyncio
import os
import platform
import shutil
import signal
import sys
import tempfile
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stack.infra import ServerProcess, free_port, init_postgres, postgres_command, remove_postgres
from stack.kafka.nodes import start_cluster

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Servers:
    postgres_url: str  # append /<database>
    kafka_bootstrap: str
    directory: Path


@contextmanager
def servers() -> Iterator[Servers]:
    """A durable PostgreSQL (fsync on, as in production) and a broker, stopped on exit."""
    # Private (mode 0700): as root, PostgreSQL's cluster then lives in a directory of nobody's (stack/infra.py).
    directory = Path(tempfile.mkdtemp(prefix="shop-bench-"))
    init_postgres(directory / "postgres")
    pg_port = free_port()
    postgres = ServerProcess(
        "postgres",
        postgres_command(directory / "postgres", pg_port),
        pg_port,
        directory / "postgres.log",
        stop_signal=signal.SIGINT,
    ).start()
    (broker,), bootstrap = start_cluster(directory / "kafka", directory)
    try:
        yield Servers(f"postgres://postgres@127.0.0.1:{pg_port}", bootstrap, directory)
    finally:
        broker.stop()
        postgres.stop()
        remove_postgres(directory / "postgres")
        shutil.rmtree(directory, ignore_errors=True)


def machine() -> dict:
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def run(main: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run(main), stopped by SIGTERM (`timeout`, `kill`) as by Ctrl-C: main's finally blocks stop the servers
    it started. By default SIGTERM ends Python at once and leaves a whole stack running, which then takes the cores
    of every later measurement."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    return asyncio.run(main)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
