"""Start, signal and reap the JVMs of the harness, and never leave one behind.

Each JVM runs in its own session (process group), so a stop reaches any child it forks.
Three guards keep a JVM from outliving its Python parent: ``stop()``/``kill()`` on the
owning object, an ``atexit`` hook that SIGKILLs every JVM still registered, and, where
util-linux's ``setpriv`` exists, a parent-death signal (SIGKILL), which also covers a
parent that was itself SIGKILLed. The parent-death signal fires when the *thread* that
started the JVM exits, so start brokers from a long-lived thread (the main thread).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.broker.errors import HarnessError

logger = logging.getLogger(__name__)

_LIVE: set[subprocess.Popen[bytes]] = set()
_TEMP_DIRS: set[Path] = set()
_LIVE_LOCK = threading.Lock()


def remove_at_exit(path: Path, remove: bool = True) -> None:
    """Delete ``path`` at interpreter exit, after the JVMs are dead (``remove=False`` forgets it)."""
    with _LIVE_LOCK:
        (_TEMP_DIRS.add if remove else _TEMP_DIRS.discard)(path)


@dataclass(frozen=True)
class JvmOptions:
    """JVM flags of a harness broker, tuned for quick start-up on a small, shared machine.

    Serial GC and C1 only (``TieredStopAtLevel=1``) roughly halve start-up time on two
    cores against the G1/C2 defaults; a test broker never runs long enough to miss C2.
    """

    heap: str = "384m"
    extra: tuple[str, ...] = ()

    def flags(self) -> list[str]:
        return [f"-Xmx{self.heap}", "-Xms32m", "-Xss1m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Xshare:auto", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true", *self.extra]


def java_command(java: str, lib: Path, main_class: str, args: Sequence[str], jvm: JvmOptions, *,
                 extra_flags: Sequence[str] = (), log4j: Path | None = None,
                 logs_dir: Path | None = None) -> list[str]:
    """The argv of ``java <flags> -cp <every jar in lib> main_class args``.

    The jars are listed in sorted order rather than as ``lib/*``, whose expansion follows
    directory order: a CDS archive is only accepted for the exact classpath it was made with.
    """
    props = list(extra_flags)
    if log4j is not None:
        props.append(f"-Dlog4j2.configurationFile={log4j}")
    if logs_dir is not None:
        props.append(f"-Dkafka.logs.dir={logs_dir}")
    classpath = os.pathsep.join(sorted(str(jar) for jar in lib.glob("*.jar")))
    return [java, *jvm.flags(), *props, "-cp", classpath, main_class, *args]


def run_tool(argv: Sequence[str], timeout: float) -> str:
    """Run a short-lived Kafka tool to completion; its output, or HarnessError with the output."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"{argv[-3:]} did not finish within {timeout}s") from exc
    if proc.returncode != 0:
        raise HarnessError(f"{argv[-3:]} exited with {proc.returncode}:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


class JvmProcess:
    """One long-running JVM whose stdout and stderr go to ``log_path``."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, argv: Sequence[str]) -> None:
        if self.running:
            raise HarnessError(f"JVM {self.pid} is already running")
        setpriv = shutil.which("setpriv")
        prefix = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen([*prefix, *argv], stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        with _LIVE_LOCK:
            _LIVE.add(self._proc)
        logger.debug("started JVM %d: %s", self._proc.pid, " ".join(argv[-2:]))

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (Kafka's clean shutdown), then SIGKILL if it has not exited within ``timeout``."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._reap()
            return
        self.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("JVM %s ignored SIGTERM for %.0fs; killing it", self.pid, timeout)
            self.kill()
        self._reap()

    def terminate(self) -> None:
        """Ask for a clean shutdown (SIGTERM) without waiting for it."""
        self._signal(signal.SIGTERM)
        self._signal(signal.SIGCONT)  # a frozen JVM cannot act on SIGTERM

    def kill(self) -> None:
        """SIGKILL the whole process group and wait for it: a crash, not a shutdown."""
        self._signal(signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait()
        self._reap()

    def freeze(self) -> None:
        """SIGSTOP: the JVM keeps its sockets but answers nothing (a stalled node)."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)

    def _reap(self) -> None:
        # No killpg here: once the JVM is reaped its pid (= group id) may belong to someone else.
        if self._proc is not None:
            with _LIVE_LOCK:
                _LIVE.discard(self._proc)


@atexit.register
def _kill_all_at_exit() -> None:
    with _LIVE_LOCK:
        live, temp_dirs = list(_LIVE), list(_TEMP_DIRS)
        _LIVE.clear()
        _TEMP_DIRS.clear()
    for proc in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
    for path in temp_dirs:
        shutil.rmtree(path, ignore_errors=True)
