"""The failure-injection report: per scenario, what was injected, how many orders, what was measured and which
invariants held. Written at the end of the session as JSON (`REPORT_PATH`) and printed as a short table."""

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.failure.invariants import Invariant

ROOT = Path(__file__).resolve().parents[2]
# Next to the benchmark results; created when missing, overwritten by every run of tests/failure.
REPORT_PATH = ROOT / "bench" / "results" / "failure-report.json"


@dataclass
class ScenarioReport:
    number: int
    title: str
    test: str
    fault: str = ""  # one line for the table
    injected: list[str] = field(default_factory=list)  # every injection, as it happened
    orders: int = 0  # orders the scenario tried to place
    figures: dict[str, Any] = field(default_factory=dict)
    invariants: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "not run"
    error: str | None = None
    logs: str | None = None  # where the cluster's logs were copied when the scenario failed
    seconds: float = 0.0
    _started: float = field(default_factory=time.monotonic, repr=False)

    def inject(self, what: str) -> None:
        """Record (and print) one injected fault, with the time since the scenario started."""
        at = time.monotonic() - self._started
        self.injected.append(f"t+{at:.1f}s {what}")
        print(f"  >> t+{at:.1f}s {what}")

    def measure(self, **figures: Any) -> None:
        self.figures.update(figures)
        print("  " + ", ".join(f"{name} {value}" for name, value in figures.items()))

    def record_invariants(self, invariants: list[Invariant], settle_seconds: float) -> None:
        self.invariants = [invariant.as_dict() for invariant in invariants]
        self.figures["settle_seconds"] = round(settle_seconds, 1)
        print(f"  invariants (settled in {settle_seconds:.1f} s):")
        for invariant in invariants:
            print(invariant.line())

    def finish(self, outcome: str, error: str | None = None) -> None:
        self.outcome, self.error = outcome, error
        self.seconds = round(time.monotonic() - self._started, 1)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["_started"]
        return data


class FailureReport:
    def __init__(self) -> None:
        self.started_at = datetime.now(UTC)
        self._started = time.monotonic()
        self.scenarios: list[ScenarioReport] = []

    def scenario(self, number: int, title: str, test: str) -> ScenarioReport:
        scenario = ScenarioReport(number, title, test)
        self.scenarios.append(scenario)
        return scenario

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "seconds": round(time.monotonic() - self._started, 1),
            "machine": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            },
            "passed": all(scenario.outcome == "passed" for scenario in self.scenarios),
            "scenarios": [scenario.as_dict() for scenario in sorted(self.scenarios, key=lambda s: s.number)],
        }

    def write(self, path: Path = REPORT_PATH) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.as_dict(), indent=2, default=str) + "\n")
        temporary.replace(path)
        return path

    def table(self) -> str:
        rows = [("#", "scenario", "fault injected", "orders", "invariants", "outcome", "s")]
        for s in sorted(self.scenarios, key=lambda s: s.number):
            held = sum(1 for invariant in s.invariants if invariant["held"])
            rows.append(
                (
                    str(s.number),
                    s.title,
                    s.fault,
                    str(s.orders),
                    f"{held}/{len(s.invariants)}" if s.invariants else "-",
                    s.outcome,
                    f"{s.seconds:.0f}",
                )
            )
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
        lines.insert(1, "  ".join("-" * width for width in widths))
        return "\n".join(lines)
