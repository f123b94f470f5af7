"""One combined KRaft node (broker + controller) in its own folder, restartable on the same dirs."""

from __future__ import annotations

import base64
import logging
import time
import uuid
from pathlib import Path

from tools.broker.errors import HarnessError
from tools.broker.kafka.admin import wait_until_ready
from tools.broker.kafka.cds import CdsArchive
from tools.broker.kafka.config import NodeSpec, write_node_config
from tools.broker.kafka.process import JvmOptions, JvmProcess, java_command, run_tool

logger = logging.getLogger(__name__)


def random_cluster_id() -> str:
    """A cluster id as ``kafka-storage.sh random-uuid`` makes one, without starting a JVM for it."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):  # Kafka rejects ids that would look like a CLI flag
            return cid


class KafkaNode:
    """A node's JVM plus its folder: ``server.properties``, ``data/`` and ``broker.log``.

    The constructor only records the spec; ``format`` and ``start`` do the work.
    """

    def __init__(self, spec: NodeSpec, cluster_size: int, java: str, lib: Path, jvm: JvmOptions,
                 cds: CdsArchive | None = None) -> None:
        self.spec = spec
        self._size = cluster_size
        self._java = java
        self._lib = lib
        self._jvm = jvm
        self._cds = cds
        self._process = JvmProcess(spec.log_path)
        self.frozen = False
        self.dumps_cds = False
        """This node's JVM writes the class-data archive when it exits cleanly."""

    @property
    def node_id(self) -> int:
        return self.spec.node_id

    @property
    def bootstrap(self) -> str:
        return self.spec.bootstrap

    @property
    def running(self) -> bool:
        return self._process.running

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def _argv(self, main_class: str, args: list[str], claim_cds_dump: bool = False) -> list[str]:
        flags = self._cds.flags(claim_cds_dump) if self._cds is not None else []
        self.dumps_cds = self.dumps_cds or any(flag.startswith("-XX:ArchiveClassesAtExit") for flag in flags)
        return java_command(self._java, self._lib, main_class, args, self._jvm, extra_flags=flags,
                            log4j=self.spec.log4j_path, logs_dir=self.spec.root / "logs")

    def format(self, cluster_id: str) -> None:
        """Write the config and format the storage, unless a previous run already formatted it."""
        write_node_config(self.spec, self._size)
        if self.spec.formatted:
            return
        started = time.monotonic()
        args = ["format", "-t", cluster_id, "-c", str(self.spec.properties_path), "--ignore-formatted"]
        run_tool(self._argv("kafka.tools.StorageTool", args), timeout=120)
        logger.debug("formatted node %d in %.1fs", self.node_id, time.monotonic() - started)

    def start(self) -> None:
        """Launch the JVM; returns at once (see :meth:`wait_ready`)."""
        if not self.spec.formatted:
            raise HarnessError(f"node {self.node_id} in {self.spec.root} is not formatted")
        self._process.start(self._argv("kafka.Kafka", [str(self.spec.properties_path)], claim_cds_dump=True))
        self.frozen = False

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Block until this node answers metadata requests and lists itself as a broker."""
        try:
            wait_until_ready(self.bootstrap, {self.node_id}, timeout, alive=lambda: self.running)
        except HarnessError as exc:
            raise HarnessError(f"node {self.node_id}: {exc}\n--- {self.spec.log_path} ---\n{self.log_tail()}") from exc

    def terminate(self) -> None:
        """Send SIGTERM and return; :meth:`stop` waits for the exit."""
        self._process.terminate()

    def stop(self, timeout: float = 20.0) -> None:
        self._process.stop(timeout)
        self._exited()

    def kill(self) -> None:
        self._process.kill()
        self._exited()

    def _exited(self) -> None:
        self.frozen = False
        if self.dumps_cds and self._cds is not None:
            self.dumps_cds = False
            self._cds.finish_dump()

    def freeze(self) -> None:
        self._process.freeze()
        self.frozen = True

    def thaw(self) -> None:
        self._process.thaw()
        self.frozen = False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.spec.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
