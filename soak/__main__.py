"""make soak: the whole system (STACK_SCALE=2) under an open-loop mix of orders (30-150 per second: paid,
cancelled, abandoned, paid right at the deadline, some sent twice with one Idempotency-Key) and admins' restocks
and price changes, while a seeded nemesis SIGKILLs or SIGSTOPs a random process every 5-20 s (services, relays,
saga, gateway, broker, PostgreSQL, the MongoDB-wire server) and once pauses the broker for longer than the saga's
step budget. Then everything runs again, the system settles, and every invariant is checked.

    python -m soak [--seed N] [--seconds S]

SOAK_SEED (default: the time) and SOAK_SECONDS (default 600) set the same; STACK_SCALE (default 2) and
KAFKA_BROKERS (default 1) as for `make run`. The same seed replays the same faults at the same moments and the
same customers' decisions. The report: bench/results/soak-report.json, and printed; if an invariant failed, the
processes' logs are copied to bench/results/soak-logs-SEED/ and the exit status is 1.
"""

import argparse
import json
import os
import sys
import time

from bench.environment import RESULTS, run
from soak.run import SoakSettings, soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED") or time.time()))
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS") or 600))
    arguments = parser.parse_args()
    settings = SoakSettings(
        seed=arguments.seed,
        seconds=arguments.seconds,
        scale=os.environ.get("STACK_SCALE") or "2",
        brokers=int(os.environ.get("KAFKA_BROKERS") or 1),
    )
    report = run(soak(settings, logs=RESULTS / f"soak-logs-{settings.seed}"))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak-report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({key: report[key] for key in ("seed", "orders", "faults_by_kind", "held")}, default=str))
    for invariant in report["invariants"]:
        print(f"  [{'ok' if invariant['held'] else 'FAIL'}] {invariant['name']}: {invariant['detail']}")
    print(f"written to {RESULTS / 'soak-report.json'}")
    return 0 if report["held"] else 1


if __name__ == "__main__":
    sys.exit(main())
