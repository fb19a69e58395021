"""A closed loop of Python calls, for what no HTTP load generator can drive: the PostgreSQL ceiling of bench.system
(raw asyncpg transactions). HTTP load comes from wrk (bench/wrk.py)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.environment import percentile


@dataclass(frozen=True)
class Measured:
    requests: int
    failures: int
    seconds: float
    latencies_ms: list[float]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def summary(self) -> dict:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "per_second": round(self.per_second, 1),
            "latency_ms_p50": round(percentile(self.latencies_ms, 0.50), 2),
            "latency_ms_p99": round(percentile(self.latencies_ms, 0.99), 2),
        }


async def closed_loop(call: Callable[[int], Awaitable[bool]], workers: int, seconds: float) -> Measured:
    """`workers` callers, each calling again as soon as its call returns, for `seconds`."""
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def worker() -> None:
        nonlocal failures
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            ok = await call(next(counter))
            latencies.append((time.perf_counter() - started) * 1000)
            failures += not ok

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return Measured(len(latencies), failures, time.perf_counter() - started, latencies)


async def open_loop(call: Callable[[int], Awaitable[bool]], rate: float, seconds: float) -> Measured:
    """Calls started at a fixed `rate` per second for `seconds`, whatever the answers' pace."""
    latencies: list[float] = []
    failures = 0

    async def one(number: int) -> None:
        nonlocal failures
        started = time.perf_counter()
        ok = await call(number)
        latencies.append((time.perf_counter() - started) * 1000)
        failures += not ok

    tasks = []
    began = time.perf_counter()
    for number in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, began + number / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(number)))
    await asyncio.gather(*tasks)
    return Measured(len(latencies), failures, time.perf_counter() - began, latencies)
