"""Resolve Apache Kafka's jars from Maven Central once, and cache them outside the clone.

The pom next to this module lists the broker and its log binding. ``ensure_kafka_jars``
runs ``mvn dependency:copy-dependencies`` into a temporary folder and renames it into
place, so an interrupted resolution never leaves a half-filled ``lib/`` that looks done;
a ``complete`` marker written last is what later runs trust. A file lock keeps several
pytest processes on one machine from resolving at the same time.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.broker.errors import HarnessError
from tools.broker.settings import HarnessSettings

logger = logging.getLogger(__name__)

POM = Path(__file__).with_name("pom.xml")
MIN_JAVA = 17
INSTALL_HINT = (
    "install a Java 17+ runtime and Maven, e.g. `apt-get install openjdk-17-jre-headless maven` "
    "(macOS: `brew install openjdk@17 maven`)"
)
_MARKER = "complete"
_RESOLVE_TIMEOUT_S = 900


def pom_digest(pom: Path = POM) -> str:
    """The cache key of a pom: the first 16 hex digits of its sha256."""
    return hashlib.sha256(pom.read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class JavaRuntime:
    path: str
    major: int
    version_text: str
    """What ``java -version`` printed: identifies the build (a CDS archive is only valid for one)."""


def java_runtime() -> JavaRuntime:
    """The ``java`` on PATH, checked to be version 17 or newer."""
    java = shutil.which("java")
    if java is None:
        raise HarnessError(f"`java` was not found on PATH; the Kafka harness needs it: {INSTALL_HINT}")
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HarnessError(f"`{java} -version` failed ({exc}); {INSTALL_HINT}") from exc
    version = _java_major(proc.stderr + proc.stdout)
    if proc.returncode != 0 or version is None:
        raise HarnessError(f"`{java} -version` did not report a version: {proc.stderr.strip()!r}; {INSTALL_HINT}")
    if version < MIN_JAVA:
        raise HarnessError(f"Kafka 4.1 needs Java {MIN_JAVA}+, but `{java}` is Java {version}; {INSTALL_HINT}")
    return JavaRuntime(java, version, proc.stderr.strip())


def _java_major(text: str) -> int | None:
    # `java -version` prints e.g. `openjdk version "17.0.15"` or, for old JVMs, `"1.8.0_402"`.
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def maven_executable() -> str:
    """The ``mvn`` on PATH, checked to run."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise HarnessError(f"`mvn` was not found on PATH; it resolves Kafka's jars once: {INSTALL_HINT}")
    try:
        proc = subprocess.run([mvn, "-v"], capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HarnessError(f"`{mvn} -v` failed ({exc}); {INSTALL_HINT}") from exc
    if proc.returncode != 0:
        raise HarnessError(f"`{mvn} -v` exited with {proc.returncode}: {proc.stderr.strip()!r}; {INSTALL_HINT}")
    return mvn


def ensure_kafka_jars(settings: HarnessSettings | None = None, pom: Path = POM) -> Path:
    """The folder of Kafka's jars, resolving them from Maven Central if they are not cached yet.

    Raises :class:`HarnessError` at once, saying what to install, when Java 17+ is missing,
    or Maven is missing and the jars are not cached yet.
    """
    return resolve_kafka(settings, pom)[1]


def resolve_kafka(settings: HarnessSettings | None = None, pom: Path = POM) -> tuple[JavaRuntime, Path]:
    """The checked Java runtime and the folder of Kafka's jars (see :func:`ensure_kafka_jars`)."""
    java = java_runtime()
    cache = (settings or HarnessSettings()).jar_cache_root() / pom_digest(pom)
    lib = cache / "lib"
    if (cache / _MARKER).is_file():
        return java, lib
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cache / _MARKER).is_file():  # another process may have finished meanwhile
            _resolve_into(cache, pom, maven_executable())
    return java, lib


def _resolve_into(cache: Path, pom: Path, mvn: str) -> None:
    logger.info("resolving Kafka jars from Maven Central into %s (first run only)", cache)
    work = Path(tempfile.mkdtemp(prefix="lib.tmp-", dir=cache))
    try:
        # mvn runs on a copy of the pom, so a read-only site-packages never gets a target/.
        shutil.copyfile(pom, work / "pom.xml")
        command = [mvn, "-q", "-B", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
                   f"-DoutputDirectory={work / 'lib'}"]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=_RESOLVE_TIMEOUT_S,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"Maven did not resolve Kafka's jars within {_RESOLVE_TIMEOUT_S}s") from exc
        jars = sorted(p.name for p in (work / "lib").glob("*.jar"))
        if proc.returncode != 0 or not any(name.startswith("kafka_2.13-") for name in jars):
            tail = (proc.stdout + proc.stderr)[-3000:]
            raise HarnessError(f"Maven could not resolve Kafka's jars (exit {proc.returncode}):\n{tail}")
        shutil.rmtree(cache / "lib", ignore_errors=True)  # left by a run killed after its rename
        (work / "lib").rename(cache / "lib")
        (cache / _MARKER).write_text("\n".join(jars) + "\n")
        logger.info("resolved %d Kafka jars into %s", len(jars), cache / "lib")
    finally:
        shutil.rmtree(work, ignore_errors=True)
