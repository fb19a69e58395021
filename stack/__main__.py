"""`python -m stack` (what `make run` calls): the whole system on this machine, in the foreground, without Docker.

PostgreSQL, Apache Kafka (KAFKA_BROKERS nodes on the system's Java, stack/kafka/) and a MongoDB-wire server
(nx-27017) start here unless their URL is set (see stack/settings.py); then every service present, each on a free
port, and the gateway on GATEWAY_PORT. honcho's Manager runs them all, each command a child of this process watched
by a thread of it (no Python wrapper process per command): their output goes to the terminal with coloured
prefixes and, line for line, to DATA_DIR/logs/<process>.log; Ctrl-C or SIGTERM stops everything, as does any
process exiting. Once everything answers, one table tells where each part is (also written to DATA_DIR/stack.json
while the stack runs).
"""

import asyncio
import datetime
import fcntl
import json
import logging
import os
import queue
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx
from honcho import manager as honcho_manager
from honcho.manager import Manager
from honcho.printer import Message, Printer

from common.topics import ensure_topics
from stack import infra
from stack.plan import Part, Stack, local_host, plan
from stack.settings import StackSettings

LAUNCHER = "stack"  # the name of the launcher's own lines and of its log file
SERVICES_STOP_WAIT = 5.0  # seconds the infrastructure outlives the services at a stop


# --- running: honcho, in threads, with logs teed to files and a gentler stop for PostgreSQL ---------------------------


class TeePrinter(Printer):
    """honcho's terminal output, plus every process's lines appended unchanged to DATA_DIR/logs/<process>.log.

    Teeing here, in the main loop that prints every line, keeps each command a plain child of honcho (no shell
    pipeline between honcho and the server, so signals reach the server itself).
    """

    def __init__(self, output: IO[str], log_dir: Path) -> None:
        super().__init__(output)
        self.log_dir = log_dir
        self._files: dict[str, IO[str]] = {}

    def write(self, message: Message) -> None:
        text = message.data.decode("utf-8", "replace") if isinstance(message.data, bytes) else message.data
        try:
            if message.name is None:  # the launcher's table: printed as is, without prefixes
                print(text, end="" if text.endswith("\n") else "\n", file=self.output, flush=True)
            else:
                super().write(message)
        except OSError:
            pass  # the terminal went away (closed pipe): keep running and logging
        self._log(message, text)

    def _log(self, message: Message, text: str) -> None:
        if message.name in (None, "system", LAUNCHER):
            # honcho's and the launcher's own lines carry no time of their own: add it.
            stamp = message.time.strftime("%Y-%m-%d %H:%M:%S")
            name = message.name or LAUNCHER
            text = "".join(f"{stamp} {name} | {line}\n" for line in text.splitlines())
            stem = LAUNCHER
        else:
            stem = message.name
        log_file = self._files.get(stem)
        if log_file is None:
            log_file = self._files[stem] = (self.log_dir / f"{stem}.log").open("a", encoding="utf-8")
        log_file.write(text if text.endswith("\n") else text + "\n")
        log_file.flush()

    def close(self) -> None:
        for log_file in self._files.values():
            log_file.close()


class StackManager(Manager):
    """honcho's Manager, changed where it runs and stops processes (honcho is pinned at 2.0.0: these override its
    `_start` and `_killall`, and replace its `events` queue):

    - each honcho Process runs in a thread of the launcher, not in a forked copy of it (honcho forks one Python
      process per command, some 40 MB resident each, only to read a pipe): the thread starts the command
      (`subprocess.Popen`, in its own session as with honcho) and passes its lines and its exit to the main loop
      through a plain `queue.Queue`. The children are in sessions of their own, so Ctrl-C at the terminal reaches
      the launcher alone, as before; signals are handled in the main thread only (honcho's handlers);
    - `on_started` runs once every runner is started;
    - the infrastructure (`stop_last`) is stopped once the services have exited (or after SERVICES_STOP_WAIT s),
      so that they close their connections, commit their offsets and flush their batches against live servers;
    - a process may have its own stop signal, sent to it alone: SIGINT is PostgreSQL's fast shutdown, where
      honcho's SIGTERM would be its "smart" one, and signalling its whole group would reach its own workers.
    """

    def __init__(
        self,
        printer: Printer,
        on_started: Callable[[], None],
        stop_signals: dict[str, signal.Signals],
        stop_last: set[str],
    ) -> None:
        super().__init__(printer)
        self.events.close()  # honcho's multiprocessing.Queue: threads need no pipe between processes
        self.events = queue.Queue()
        self._on_started = on_started
        self._stop_signals = stop_signals
        self._stop_last = stop_last

    def say(self, text: str, raw: bool = False, name: str = LAUNCHER) -> None:
        """Print a line of the launcher's from any thread (through honcho's queue, so lines never interleave)."""
        self.events.put(Message("line", text, datetime.datetime.now(), None if raw else name, None))

    @property
    def stopping(self) -> bool:
        return self._terminating

    def _start(self) -> None:
        for name, process in self._processes.items():
            # ignore_signals=False: only the main thread may set signal handlers, and it has honcho's.
            runner = threading.Thread(target=process["obj"].run, args=(self.events, False), name=name, daemon=True)
            process["process"] = runner
            runner.start()
        self._on_started()

    def _running(self) -> list[str]:
        # A process without a pid has not reported its start: the SIGKILL round after KILL_WAIT catches it.
        return [name for name, p in self._processes.items() if "returncode" not in p and p.get("pid") is not None]

    def _killall(self, force: bool = False) -> None:
        if force:
            for name in self._running():
                self._signal(name, signal.SIGKILL, self._system_print)
            return
        first = [name for name in self._running() if name not in self._stop_last]
        for name in first:
            self._signal(name, self._stop_signals.get(name, signal.SIGTERM), self._system_print)
        threading.Thread(target=self._stop_infrastructure, args=(first,), name="stop", daemon=True).start()

    def _stop_infrastructure(self, first: list[str]) -> None:
        deadline = time.monotonic() + SERVICES_STOP_WAIT
        while time.monotonic() < deadline and any("returncode" not in self._processes[n] for n in first):
            time.sleep(0.05)
        for name in self._running():
            self._signal(name, self._stop_signals.get(name, signal.SIGTERM), lambda text: self.say(text, name="system"))

    def _signal(self, name: str, chosen: signal.Signals, report: Callable[[str], None]) -> None:
        pid = self._processes[name]["pid"]
        report(f"sending {chosen.name} to {name} (pid {pid})\n")
        try:
            if chosen != signal.SIGKILL and name in self._stop_signals:
                os.kill(pid, chosen)  # it alone (it was exec'd, so honcho's pid is its own)
            else:
                os.killpg(pid, chosen)  # honcho starts each command in its own session: its whole group
        except (ProcessLookupError, PermissionError):
            pass


# --- watching: topics, readiness, the summary ---------------------------------------------------------------------


def create_topics(
    stack: Stack, timeout: float, done: threading.Event, failed: threading.Event, manager: StackManager
) -> None:
    bootstrap = stack.bootstrap_servers
    try:
        asyncio.run(ensure_topics(bootstrap, timeout=timeout, brokers=stack.kafka_brokers))
    except Exception as error:
        failed.set()
        manager.say(f"creating the Kafka topics on {bootstrap} failed: {error!r}; stopping the stack")
        time.sleep(0.2)  # let the main loop print that before honcho's own lines about the stop
        os.kill(os.getpid(), signal.SIGTERM)  # handled by honcho in the main thread: stops every process
        return
    done.set()


def _is_ready(part: Part, client: httpx.Client, topics_created: threading.Event) -> tuple[bool, str]:
    """Whether the part answers, and if not, why (for the not-ready report)."""
    if part.port is not None and not infra.port_open(part.port):
        return False, f"nothing listens on port {part.port}"
    if part.needs_topics and not topics_created.is_set():
        return False, "topics not created yet"
    if part.probe_url is not None:
        try:
            status = client.get(part.probe_url).status_code
        except httpx.HTTPError as error:
            return False, f"{part.probe_url}: {type(error).__name__}"
        if status != 200:
            return False, f"{part.probe_url} answers {status}"
    return True, ""


def watch_readiness(
    stack: Stack, settings: StackSettings, data_dir: Path, topics_created: threading.Event, manager: StackManager
) -> None:
    started = time.monotonic()
    waiting = list(stack.parts)
    reported = False
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while waiting:
            if manager.stopping:
                return  # nothing to announce any more
            reasons = {part.name: _is_ready(part, client, topics_created) for part in waiting}
            waiting = [part for part in waiting if not reasons[part.name][0]]
            if waiting and not reported and time.monotonic() - started > settings.stack_ready_timeout:
                reported = True
                lines = [f"not ready after {settings.stack_ready_timeout:.0f} s (still waiting):"]
                lines += [
                    f"  {part.label}: {reasons[part.name][1]}; log: {_log_path(data_dir, part)}" for part in waiting
                ]
                manager.say("\n".join(lines))
            time.sleep(0.25)
    manager.say(summary(stack, data_dir, time.monotonic() - started), raw=True)
    if not manager.stopping:  # main() removes the file once stopped: never write it after that
        write_stack_json(stack, data_dir)


def _log_path(data_dir: Path, part: Part) -> str:
    if part.external:
        return "(external)"
    return _shown(data_dir / "logs" / f"{part.name}.log")


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _postgres_data(stack: Stack) -> Path | None:
    """Where the embedded PostgreSQL keeps its cluster: DATA_DIR/postgres, or (as root, with DATA_DIR out of
    nobody's reach) a directory of nobody's in the temporary directory (stack/infra.py, `cluster_location`)."""
    for part in stack.parts:
        if part.name == "postgres" and part.command is not None:
            return infra.postgres_cluster_of(part.command)
    return None


def summary(stack: Stack, data_dir: Path, elapsed: float) -> str:
    rows = [("component", "address", "log")]
    rows += [(part.label, part.address, _log_path(data_dir, part)) for part in stack.parts]
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    lines = ["", f"== Local stack ready in {elapsed:.1f} s =="]
    lines += [f"  {label:<{widths[0]}}  {address:<{widths[1]}}  {log}" for label, address, log in rows]
    if (postgres_data := _postgres_data(stack)) is not None:
        inside = postgres_data.is_relative_to(data_dir)
        where = "" if inside else f" (owned by {infra.UNPRIVILEGED_USER}: DATA_DIR is out of its reach)"
        lines.append(f"  PostgreSQL's data: {_shown(postgres_data)}{where}")
    for service in stack.services:
        if service.prefixes:
            lines.append(
                f"  {service.package} serves {', '.join(service.prefixes)}; "
                f"docs {stack.gateway_url}{service.docs_prefix}"
            )
    hint = "/api/v1/.well-known/jwks.json" if any(s.package == "user_svc" for s in stack.services) else "/health"
    lines += [f"Try: curl {stack.gateway_url}{hint}", "Ctrl-C stops everything.", ""]
    return "\n".join(lines)


def write_stack_json(stack: Stack, data_dir: Path) -> None:
    postgres_data = _postgres_data(stack)
    document = {
        "pid": os.getpid(),
        "gateway": stack.gateway_url,
        "kafka_bootstrap_servers": stack.bootstrap_servers,
        "components": [
            {
                "name": part.name,
                "label": part.label,
                "address": part.address,
                "external": part.external,
                "log": None if part.external else str(data_dir / "logs" / f"{part.name}.log"),
            }
            for part in stack.parts
        ],
        "postgres_data": None if postgres_data is None else str(postgres_data),
    }
    temporary = data_dir / "stack.json.tmp"
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    temporary.replace(data_dir / "stack.json")  # whole or absent, for scripts that wait for it


# --- main ---------------------------------------------------------------------------------------------------------


def _lock(data_dir: Path) -> IO[str]:
    """Hold DATA_DIR/stack.lock while running: a second launcher on the same data would fight over PostgreSQL."""
    lock_file = (data_dir / "stack.lock").open("a")
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RuntimeError(f"another `python -m stack` is running on {data_dir}") from None
    return lock_file


def main() -> int:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # retries while the broker starts are expected
    try:
        settings = StackSettings()
        data_dir = settings.data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = _lock(data_dir)
        (data_dir / "stack.json").unlink(missing_ok=True)
        if infra.port_open(settings.gateway_port, local_host(settings.gateway_host)):
            raise RuntimeError(f"port {settings.gateway_port} is in use: set GATEWAY_PORT to a free port")
        stack = plan(settings, data_dir)
    except Exception as error:
        detail = getattr(error, "stderr", None)
        print(f"stack: cannot start: {error}", file=sys.stderr)
        if detail:
            print(detail.decode(errors="replace") if isinstance(detail, bytes) else detail, file=sys.stderr)
        return 1

    (data_dir / "logs").mkdir(exist_ok=True)
    printer = TeePrinter(sys.stdout, data_dir / "logs")
    topics_created, topics_failed = threading.Event(), threading.Event()

    def start_watchers() -> None:
        threading.Thread(
            target=create_topics,
            name="topics",
            daemon=True,
            args=(stack, settings.stack_ready_timeout, topics_created, topics_failed, manager),
        ).start()
        threading.Thread(
            target=watch_readiness,
            name="readiness",
            daemon=True,
            args=(stack, settings, data_dir, topics_created, manager),
        ).start()

    stop_signals = {part.name: part.stop_signal for part in stack.parts if part.stop_signal != signal.SIGTERM}
    infrastructure = {part.name for part in stack.parts if part.infrastructure}
    manager = StackManager(printer, start_watchers, stop_signals, infrastructure)
    # honcho SIGKILLs whatever still runs KILL_WAIT s after the first exit: leave room for the two-step stop.
    honcho_manager.KILL_WAIT = SERVICES_STOP_WAIT + 5
    for part in stack.parts:
        if part.command is not None:
            # `exec`: no shell stays between honcho and the server, so the pid honcho knows is the server's.
            manager.add_process(part.name, "exec " + shlex.join(part.command), env={**os.environ, **part.env})
    try:
        manager.loop()
    finally:
        (data_dir / "stack.json").unlink(missing_ok=True)
        printer.close()
        lock.close()
    return 1 if topics_failed.is_set() else manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
