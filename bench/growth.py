"""Whether a long-running stack slows down: orders at one fixed rate (open loop) in consecutive windows on one
stack, each window measured alone (its orders all reserved before the next starts), and for each its order commit
to AWAITING_PAYMENT p50/p99, the broker's CPU (share of one core over the window) and resident memory (PSS) at its
end. By default six 30 s windows at 150 orders/s: 27,000 orders, about 54,000 events through each topic's hops.

    python -m bench.growth [--rate 150] [--windows 6] [--seconds 30]

Results: bench/results/growth.json. `last_over_first_p99` is the last window's p99 over the first's.
"""

import argparse
import json
import shutil
import time

import httpx

from bench.environment import RESULTS, machine, run
from bench.http import HttpBench
from bench.processes import cpu_between, sample
from bench.system import Bench
from tests.cluster import Cluster


async def window(measure: HttpBench, rate: float) -> dict:
    before, started = sample(measure.roots), time.monotonic()
    latency = await measure.latency_at(rate)
    after, elapsed = sample(measure.roots), time.monotonic() - started
    cpu = cpu_between(before, after)
    return {
        "awaiting_payment_ms_p50": latency["awaiting_payment_ms_p50"],
        "awaiting_payment_ms_p99": latency["awaiting_payment_ms_p99"],
        "post_p99_ms": latency["post"]["p99_ms"],
        "orders": latency["orders"],
        "seconds": round(elapsed, 1),
        "broker_percent_of_one_core": round(cpu["broker"] / elapsed * 100, 1),
        "all_processes_percent_of_one_core": round(sum(cpu.values()) / elapsed * 100, 1),
        "broker_resident_mib_pss": round(after.resident_bytes["broker"] / 2**20),
    }


async def main(rate: float, windows: int, seconds: float) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("bench.growth needs wrk: apt-get install wrk (Debian/Ubuntu), or your system's package")
    cluster = await Cluster().start()
    try:
        async with httpx.AsyncClient(base_url=cluster.api, timeout=60, limits=httpx.Limits(max_connections=50)) as api:
            bench = Bench(cluster, api, seconds)
            await bench.prepare()
            measure = HttpBench(cluster, bench, seconds)
            result: dict = {"benchmark": "growth", "machine": machine(), "rate_per_second": rate, "windows": []}
            for number in range(windows):
                result["windows"].append(await window(measure, rate))
                print(f"window {number + 1}/{windows}", json.dumps(result["windows"][-1]), flush=True)
            first, last = result["windows"][0], result["windows"][-1]
            result["last_over_first_p99"] = round(last["awaiting_payment_ms_p99"] / first["awaiting_payment_ms_p99"], 2)
            result["broker_memory_growth_mib"] = last["broker_resident_mib_pss"] - first["broker_resident_mib_pss"]
            return result
    finally:
        cluster.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--windows", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=30.0)
    arguments = parser.parse_args()
    outcome = run(main(arguments.rate, arguments.windows, arguments.seconds))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "growth.json").write_text(json.dumps(outcome, indent=2) + "\n")
    print(json.dumps({key: value for key, value in outcome.items() if key != "windows"}, indent=2))
