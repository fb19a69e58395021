"""The soak's faults, applied to a running cluster on schedule: SIGKILL then a restart after the fault's duration,
or SIGSTOP then SIGCONT. `heal` leaves every process running."""

import asyncio
import logging
import time
from collections import Counter

from soak.schedule import Fault, FaultKind
from tests.cluster import Cluster

log = logging.getLogger(__name__)


class Nemesis:
    def __init__(self, cluster: Cluster, schedule: list[Fault]) -> None:
        self.cluster, self.schedule = cluster, schedule
        self.injected: list[dict] = []
        self.crashed: list[dict] = []  # processes that exited without being killed here: each one a bug
        self._paused: set[str] = set()
        self._killed: set[str] = set()

    @property
    def by_kind(self) -> dict[str, int]:
        return dict(Counter(fault["kind"] for fault in self.injected))

    async def run(self, seconds: float) -> None:
        """Each fault at its moment (faults overlap: each runs as its own task), while crashes are watched for."""
        started = time.monotonic()
        running = [asyncio.create_task(self._watch_for_crashes(started, seconds))]
        for fault in self.schedule:
            if fault.at >= seconds:
                break
            await asyncio.sleep(max(0.0, started + fault.at - time.monotonic()))
            running.append(asyncio.create_task(self._inject(fault, started)))
        await asyncio.gather(*running)

    async def _inject(self, fault: Fault, started: float) -> None:
        at = round(time.monotonic() - started, 1)
        if down := [name for name in fault.targets if name in self._killed | self._paused]:
            # An earlier fault still holds it (a restart can take minutes while the broker is frozen).
            print(f"  nemesis {at:6.1f} s: skipped {fault.describe()}: {', '.join(down)} still down", flush=True)
            return
        print(f"  nemesis {at:6.1f} s: {fault.describe()}", flush=True)
        if fault.kind == FaultKind.KILL:
            for name in fault.targets:
                self.cluster.kill(name)
                self._killed.add(name)
            await asyncio.sleep(fault.duration)
            for name in fault.targets:
                await self._start_again(name)
        else:
            for name in fault.targets:
                self.cluster.pause(name)
                self._paused.add(name)
            await asyncio.sleep(fault.duration)
            for name in fault.targets:
                self.cluster.resume(name)
                self._paused.discard(name)
        self.injected.append(
            {"at": at, "kind": str(fault.kind), "targets": list(fault.targets), "seconds": fault.duration}
        )

    async def _watch_for_crashes(self, started: float, seconds: float) -> None:
        """A process that exits by itself is recorded and started again, as a supervisor would (compose's restart
        policy, Kubernetes): the run goes on, and the report names the crash."""
        while time.monotonic() - started < seconds:
            await self.restart_crashed(started)
            await asyncio.sleep(1)

    async def restart_crashed(self, started: float) -> None:
        for name, server in self.cluster.processes.items():
            if name in self._killed or server.process is None or server.process.poll() is None:
                continue
            at = round(time.monotonic() - started, 1)
            self.crashed.append({"at": at, "target": name, "exit_code": server.process.returncode})
            print(f"  nemesis {at:6.1f} s: {name} exited by itself ({server.process.returncode}); started again")
            self._killed.add(name)
            await self._start_again(name)

    async def _start_again(self, name: str) -> None:
        """Started again as an operator would, retried until it runs (a service waits for PostgreSQL if that is
        down too)."""
        while True:
            try:
                await self.cluster.restart(name)
            except (RuntimeError, TimeoutError) as error:
                print(f"  nemesis: {name} did not start ({error}); again", flush=True)
                self.cluster.kill(name)  # started but not ready: it would hold the port
                await asyncio.sleep(1)
                continue
            self._killed.discard(name)
            return

    async def heal(self) -> None:
        """Every paused process resumed and every killed one running again."""
        for name in list(self._paused):
            self.cluster.resume(name)
        self._paused.clear()
        for name in list(self._killed):
            await self._start_again(name)
