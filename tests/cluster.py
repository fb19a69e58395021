"""The whole system for system tests: the local stack's plan (stack/plan.py), each part started as its own
process so that a test can kill one (SIGKILL) and start it again, as a crash and a restart would."""

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from common.topics import ensure_topics
from stack.infra import ServerProcess, free_port, postgres_cluster_of
from stack.plan import Part, plan
from stack.settings import StackSettings

ROOT = Path(__file__).resolve().parents[1]
ADMIN = {"username": "admin@example.com", "password": "Admin12345"}


def _tail(log: Path, lines: int = 40) -> str:
    """The end of a process's log, for an error raised before the cluster (and its logs) are removed."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(no log: {error})"


def _port(part: Part) -> int:
    return part.port or int(part.address.rsplit(":", 1)[1].split("/")[0])


class Cluster:
    def __init__(self, service_env: dict[str, str] | None = None, scale: str = "", brokers: int = 1) -> None:
        """`scale` as STACK_SCALE: e.g. "2" runs two of every process, named `saga.1`, `saga.2`, ...; `brokers` as
        KAFKA_BROKERS (three are `broker.1` to `broker.3`)."""
        # Private (mode 0700): as root, PostgreSQL's cluster then lives in a directory of nobody's (stack/infra.py).
        self.directory = Path(tempfile.mkdtemp(prefix="shop-cluster-"))
        settings = StackSettings(
            _env_file=None, data_dir=self.directory, gateway_port=free_port(), stack_scale=scale, kafka_brokers=brokers
        )
        self.stack = plan(settings, self.directory)
        self.parts = {part.name: part for part in self.stack.parts}
        self.postgres_data = postgres_cluster_of(self.parts["postgres"].command)
        self.processes = {
            part.name: ServerProcess(
                part.name,
                part.command,
                _port(part),
                self.directory / "logs" / f"{part.name}.log",
                stop_signal=part.stop_signal,
                env={**part.env, **(service_env or {})} if part.probe_url else part.env,
                cwd=ROOT,
            )
            for part in self.stack.parts
            if part.command is not None
        }
        self.api = f"http://127.0.0.1:{settings.gateway_port}/api/v1"

    async def start(self, timeout: float = 90) -> "Cluster":
        """Every process started and ready; if one is not, all are stopped (none outlives a failed start)."""
        try:
            infrastructure = [name for name, part in self.parts.items() if part.infrastructure]
            services = [name for name in self.processes if name not in infrastructure]
            # Side by side: a Kafka controller quorum forms only once a majority of its nodes runs.
            await asyncio.gather(*(asyncio.to_thread(self.processes[name].start) for name in infrastructure))
            await ensure_topics(self.stack.bootstrap_servers, timeout=60, brokers=self.stack.kafka_brokers)
            # All at once, as `make run` starts them: instances of one service race to create and migrate its
            # database on an empty cluster (common/database.py makes them take turns).
            await asyncio.gather(*(asyncio.to_thread(self.processes[name].start) for name in services))
            await asyncio.gather(*(self.wait_ready(name, timeout) for name in services))
        except BaseException:
            self.stop()
            raise
        return self

    async def wait_ready(self, name: str, timeout: float = 90) -> None:
        probe = self.parts[name].probe_url
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                try:
                    if (await client.get(probe)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                process = self.processes[name]
                if process.process is not None and process.process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.process.returncode}:\n{_tail(process.log_path)}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready after {timeout} s:\n{_tail(process.log_path)}")
                await asyncio.sleep(0.1)

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed, as in a crash."""
        self.processes[name].kill()

    def pause(self, name: str) -> None:
        """SIGSTOP: the process (group) freezes where it is, its connections left open, until `resume`."""
        os.killpg(self.processes[name].process.pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        os.killpg(self.processes[name].process.pid, signal.SIGCONT)

    @contextlib.contextmanager
    def relays_paused(self) -> Iterator[None]:
        """Every relay instance paused for the block. Orders placed meanwhile all race for stock in the saga:
        without it, the first reservations' stock-updated events reach order_svc's stock view while later orders
        still arrive, and it refuses those at once (409, as designed) instead of letting them race."""
        relays = self.instances("outbox_relay")
        for relay in relays:
            self.pause(relay)
        try:
            yield
        finally:
            for relay in relays:
                self.resume(relay)

    @contextlib.asynccontextmanager
    async def killed(self, name: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """`name` SIGKILLed for the block, which gets a function that starts it again (a test that needs it back at
        a chosen moment); started again at the end otherwise, whatever happened in the block."""
        self.kill(name)
        down = True

        async def back() -> None:
            nonlocal down
            if down:
                await self.restart(name)
                down = False

        try:
            yield back
        finally:
            await back()

    async def restart(self, name: str) -> None:
        """`name` started again on its data; a service is then waited for until ready, a server until it listens."""
        await asyncio.to_thread(self.processes[name].start)
        if self.parts[name].probe_url is not None:
            await self.wait_ready(name)

    def halt(self) -> None:
        """Every process stopped, as `make run` stops on Ctrl-C, the data kept: `start()` runs them again on it.
        The services and the gateway all at once (each takes about a second to leave), then the servers."""
        servers = [name for name in self.processes if self.parts[name].infrastructure]
        services = [process for name, process in self.processes.items() if name not in servers]
        with ThreadPoolExecutor(max(len(services), 1)) as pool:
            list(pool.map(ServerProcess.stop, services))
        with ThreadPoolExecutor(max(len(servers), 1)) as pool:  # the brokers of a cluster leave together
            list(pool.map(ServerProcess.stop, [self.processes[name] for name in servers]))

    def stop(self) -> None:
        """Every process stopped, and the data removed."""
        self.halt()
        shutil.rmtree(self.postgres_data, ignore_errors=True)  # in self.directory, or (as root) nobody's own
        shutil.rmtree(self.directory, ignore_errors=True)

    def instances(self, package: str) -> list[str]:
        """The process names of `package`: `["saga"]` with one instance, `["saga.1", "saga.2"]` with two."""
        names = [name for name in self.processes if _package_of(name) == package]
        if not names:
            raise KeyError(f"no process runs {package}")
        return names

    def env_of(self, package: str) -> dict[str, str]:
        """The environment the plan gives `package`'s processes, whatever the scale (its instances differ only in
        PORT), e.g. `env_of("outbox_relay")["OUTBOX_MONGO_URL"]`."""
        return self.parts[self.instances(package)[0]].env

    def database_url(self, variable: str) -> str:
        """A service's database URL, e.g. `STOCK_DATABASE_URL` (for checking invariants in the database)."""
        packages = dict.fromkeys(_package_of(name) for name in self.processes)
        return next(env[variable] for env in map(self.env_of, packages) if variable in env)


def _package_of(name: str) -> str:
    """`saga.2` -> `saga`; a single instance is named after its package (`saga`, `postgres`, `gateway`)."""
    package, _, instance = name.rpartition(".")
    return package if package and instance.isdigit() else name


async def sign_in(client: httpx.AsyncClient, form: dict[str, str]) -> dict[str, str]:
    response = await client.post("/auth/login", data=form)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def new_customer(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    body = {"email": email, "password": "Password123", "first_name": "Test", "last_name": "Customer"}
    (await client.post("/auth/register", json=body)).raise_for_status()
    return await sign_in(client, {"username": email, "password": "Password123"})


async def eventually(probe, accept, timeout: float = 60, interval: float = 0.2):
    """Poll the async `probe` until `accept(value)`; return the value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        await asyncio.sleep(interval)
