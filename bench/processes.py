"""CPU time and resident memory of the stack's processes, read from /proc (Linux).

Each component is a process tree: PostgreSQL's postmaster and its backends, a service and its threads. A tree's CPU
time counts its live processes and, through `cutime`/`cstime`, the children that already exited and were reaped.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # the fields after the command name, which may hold spaces


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _tree(pid: int, children: Mapping[int, list[int]]) -> list[int]:
    pids, pending = [], [pid]
    while pending:
        current = pending.pop()
        pids.append(current)
        pending.extend(children.get(current, ()))
    return pids


def _cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    if fields is None:
        return 0.0
    # utime, stime, cutime, cstime: fields 14-17 of stat(5), here counted from the state (field 3) as 0.
    return sum(int(value) for value in fields[11:15]) / _TICKS


def _resident_bytes(pid: int) -> int:
    """The process's proportional share of resident memory (Pss): shared pages, such as PostgreSQL's shared
    buffers, are split between the processes that map them instead of counted once per process."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except OSError:
        return 0


@dataclass(frozen=True)
class Sample:
    cpu_seconds: dict[str, float]
    resident_bytes: dict[str, int]


def sample(roots: Mapping[str, int]) -> Sample:
    """The CPU seconds used so far and the resident memory of each named process tree."""
    children = _children()
    trees = {name: _tree(pid, children) for name, pid in roots.items()}
    return Sample(
        cpu_seconds={name: sum(_cpu_seconds(pid) for pid in pids) for name, pids in trees.items()},
        resident_bytes={name: sum(_resident_bytes(pid) for pid in pids) for name, pids in trees.items()},
    )


def cpu_between(before: Sample, after: Sample) -> dict[str, float]:
    """CPU seconds each tree used between two samples."""
    return {name: after.cpu_seconds[name] - before.cpu_seconds.get(name, 0.0) for name in after.cpu_seconds}
