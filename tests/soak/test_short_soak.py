"""A short soak, as CI runs it: two minutes of mixed load and random faults (seed fixed, so that a failure replays
with `python -m soak --seed 2026 --seconds 120`), then every invariant must hold. `make soak` runs the long one."""

import json

from soak.run import SoakSettings, soak

SEED = 2026


async def test_two_minutes_of_load_and_faults_break_no_invariant(tmp_path):
    report = await soak(SoakSettings(seed=SEED, seconds=120, rates=(20.0, 60.0)), logs=tmp_path / "logs")
    (tmp_path / "soak-report.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({key: report[key] for key in ("orders", "load", "faults_by_kind")}, default=str))
    failed = [invariant for invariant in report["invariants"] if not invariant["held"]]
    assert report["faults"], "the nemesis injected nothing"
    assert report["load"]["orders_accepted"] > 0
    assert not failed, json.dumps(failed, indent=2)
