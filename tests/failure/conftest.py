"""Failure injection against the real processes of the system (tests/cluster.py).

The scenarios share one cluster (starting one takes ~10 s): the invariants are global, so each scenario also
re-checks what the earlier ones left behind. A scenario that fails leaves a cluster that can be trusted no more:
the next scenario gets a fresh one. After every scenario the cluster's logs are copied under the session's
temporary directory (the path is kept in the report, and printed for a failed scenario). At the end of the
session the report is written (tests/failure/report.py) and printed as a table.
"""

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.cluster import ADMIN, Cluster, sign_in
from tests.failure.report import FailureReport, ScenarioReport
from tests.failure.support import cancel_leftover_load

SERVICE_ENV = {"SAGA_TIMER_INTERVAL": "0.1"}

REPORT = FailureReport()
SCENARIO = pytest.StashKey[ScenarioReport]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario(number, title, fault): a failure-injection scenario of the report")


class SharedCluster:
    """The cluster the scenarios share, started on first use and replaced after a scenario that failed."""

    def __init__(self, log_root: Path) -> None:
        self.log_root = log_root
        self.cluster: Cluster | None = None
        self.broken = False

    async def get(self) -> Cluster:
        if self.cluster is not None and self.broken:
            self.close()
        if self.cluster is None:
            self.cluster = Cluster(service_env=SERVICE_ENV)
            self.broken = False
            try:
                await self.cluster.start()
            except Exception:
                self.broken = True
                raise
        return self.cluster

    def keep_logs(self, name: str) -> Path | None:
        if self.cluster is None:
            return None
        target = self.log_root / name
        shutil.copytree(self.cluster.directory / "logs", target, dirs_exist_ok=True)
        return target

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None


@pytest.fixture(scope="package")
async def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SharedCluster]:
    shared = SharedCluster(tmp_path_factory.mktemp("failure-logs"))
    yield shared
    shared.close()


@pytest.fixture
async def cluster(shared_cluster: SharedCluster) -> Cluster:
    return await shared_cluster.get()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=cluster.api, timeout=60, limits=limits) as client:
        yield client


@pytest.fixture
async def admin(api: httpx.AsyncClient) -> dict[str, str]:
    return await sign_in(api, ADMIN)


@pytest.fixture(autouse=True)
async def no_load_left_behind() -> AsyncIterator[None]:
    """A scenario that failed half-way may leave a burst running: stop it before the next one."""
    yield
    await cancel_leftover_load()


@pytest.fixture
def scenario(request: pytest.FixtureRequest, cluster: Cluster) -> ScenarioReport:
    """The test's entry in the report (from its `scenario` marker); its clock starts once the cluster runs."""
    marker = request.node.get_closest_marker("scenario")
    assert marker is not None, "a failure scenario needs @pytest.mark.scenario(number=..., title=..., fault=...)"
    entry = REPORT.scenario(marker.kwargs["number"], marker.kwargs["title"], request.node.nodeid)
    entry.fault = marker.kwargs.get("fault", "")
    request.node.stash[SCENARIO] = entry
    print(f"\n== scenario {entry.number}: {entry.title} ==")
    return entry


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    entry = item.stash.get(SCENARIO, None)
    if report.when == "call" and entry is not None:
        entry.finish("passed" if report.passed else "failed", None if report.passed else _short(call.excinfo))
    shared = getattr(item, "funcargs", {}).get("shared_cluster")
    if report.when == "call" and isinstance(shared, SharedCluster):
        logs = shared.keep_logs(item.name)  # the cluster's logs so far, for every scenario
        if entry is not None and logs is not None:
            entry.logs = str(logs)
    if report.failed and report.when in ("setup", "call") and isinstance(shared, SharedCluster):
        shared.broken = True
        if entry is not None and entry.logs:
            report.sections.append(("cluster logs", f"copied to {entry.logs}"))
    return report


def _short(excinfo) -> str | None:
    if excinfo is None:
        return None
    return f"{excinfo.typename}: {str(excinfo.value)[:2000]}"


def pytest_terminal_summary(terminalreporter) -> None:
    if not REPORT.scenarios:
        return
    path = REPORT.write()
    terminalreporter.write_sep("=", "failure-injection report")
    for line in REPORT.table().splitlines():
        terminalreporter.write_line(line)
    for entry in REPORT.scenarios:
        if entry.outcome != "passed" and entry.logs:
            terminalreporter.write_line(f"scenario {entry.number} {entry.outcome}; cluster logs in {entry.logs}")
    terminalreporter.write_line(f"written to {path}")
