"""The local broker's jars: resolved once from Maven Central by the ordinary Maven client, checked against the
SHA-256 sums pinned in jars.sha256, and kept in the user's cache (outside the work tree), where every later start,
offline included, finds them.

    classpath = broker_classpath()   # "<cache>/kafka-<digest>/libs/*", resolving the jars the first time

Maven checks each download against the repository's own checksums (`--strict-checksums`); the pinned sums then
say that what it resolved is exactly what this project was tested with, and are checked again at every start
(some 45 MB: a few tens of milliseconds).
"""

import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
PINNED = HERE / "jars.sha256"


class MissingTool(RuntimeError):
    """Something the local broker needs is not installed; the message says what to install."""


def pinned_sums() -> dict[str, str]:
    """File name -> SHA-256 of every jar the broker runs on."""
    sums = {}
    for line in PINNED.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name.lstrip("*")] = digest
    return sums


def cache_root() -> Path:
    """$XDG_CACHE_HOME/outbox-shop, else ~/.cache/outbox-shop."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "outbox-shop"


def libs_dir() -> Path:
    """Where this pom's jars are kept: named after the pom and the pinned sums, so that a change of either
    resolves anew beside the old set."""
    digest = hashlib.sha256(POM.read_bytes() + PINNED.read_bytes()).hexdigest()[:12]
    return cache_root() / f"kafka-{digest}" / "libs"


@functools.cache
def broker_classpath() -> str:
    """The broker's classpath, its jars resolved first if they are not in the cache (checked once per process)."""
    return f"{ensure_jars()}/*"


def ensure_jars() -> Path:
    libs = libs_dir()
    if _problems(libs) == []:
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    with (libs.parent / ".lock").open("a") as lock:  # one resolver at a time (tests and stacks start together)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _problems(libs) == []:
            return libs  # another process resolved them while we waited
        shutil.rmtree(libs, ignore_errors=True)  # incomplete or altered
        staging = Path(tempfile.mkdtemp(prefix=".libs-", dir=libs.parent))
        try:
            _resolve(staging)
            if problems := _problems(staging):
                raise RuntimeError(
                    f"the Kafka jars Maven resolved do not match {PINNED}: {'; '.join(problems[:5])}"
                    + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
                )
            staging.rename(libs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return libs


def _resolve(target: Path) -> None:
    maven = shutil.which("mvn")
    if maven is None:
        raise MissingTool(
            "the local Kafka broker's jars are fetched once with Maven, which is not installed: "
            "apt-get install maven (or set KAFKA_BOOTSTRAP_SERVERS to a running Kafka)"
        )
    print(f"fetching the Kafka broker's jars with Maven into {target.parent} (once)", flush=True)
    done = subprocess.run(
        [
            maven,
            "--batch-mode",
            "--quiet",
            "--strict-checksums",
            "--file",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={target}",
            "-DincludeScope=runtime",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()
        raise RuntimeError("Maven could not fetch the Kafka broker's jars:\n" + "\n".join(output[-20:]))


def _problems(libs: Path) -> list[str]:
    """What differs between `libs` and the pinned jars (empty: exactly the pinned set)."""
    if not libs.is_dir():
        return [f"{libs} is missing"]
    expected = pinned_sums()
    present = {path.name for path in libs.glob("*.jar")}
    problems = [f"{name} missing" for name in sorted(expected.keys() - present)]
    problems += [f"{name} not pinned" for name in sorted(present - expected.keys())]
    for name in sorted(expected.keys() & present):
        if _sha256(libs / name) != expected[name]:
            problems.append(f"{name} has another SHA-256")
    return problems


def _sha256(path: Path) -> str:
    with path.open("rb") as data:
        return hashlib.file_digest(data, "sha256").hexdigest()
