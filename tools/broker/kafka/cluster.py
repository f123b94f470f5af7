"""A real Apache Kafka cluster of combined KRaft nodes on loopback, for integration and fault tests."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from tools.broker.errors import HarnessError
from tools.broker.kafka import admin
from tools.broker.kafka.cds import CdsArchive
from tools.broker.kafka.config import HOST, ListenerSpec
from tools.broker.kafka.jars import resolve_kafka
from tools.broker.kafka.layout import plan_layout
from tools.broker.kafka.node import KafkaNode
from tools.broker.kafka.process import JvmOptions, remove_at_exit
from tools.broker.settings import HarnessSettings

logger = logging.getLogger(__name__)


class KafkaCluster:
    """``size`` nodes, each broker and controller, sharing one cluster id and a static voter set.

    With three nodes topics default to replication factor 3 and ``min.insync.replicas=2``
    (so are the offsets and transaction topics): one node may die without losing a write.
    The constructor does no I/O; :meth:`start_all` (or ``with``) resolves jars, formats the
    storage and waits until every node serves metadata. ``data_dir`` keeps the cluster's
    folders (and ports, see :mod:`layout`) across runs; without it a temporary folder is
    used and removed by :meth:`close`.
    """

    def __init__(self, size: int = 3, *, data_dir: Path | None = None, ports: Sequence[int] | None = None,
                 overrides: Mapping[str, str] | None = None, extra_listeners: Sequence[ListenerSpec] = (),
                 settings: HarnessSettings | None = None, jvm: JvmOptions | None = None,
                 start_timeout: float = 120.0) -> None:
        if ports is not None and len(ports) != size:
            raise HarnessError(f"{len(ports)} ports given for {size} nodes")
        self.size = size
        self._data_dir = data_dir
        self._ports = list(ports) if ports else None
        self._overrides = dict(overrides or {})
        self._extra_listeners = tuple(extra_listeners)
        self._settings = settings
        self._jvm = jvm
        self._start_timeout = start_timeout
        self._root: Path | None = None
        self._owns_root = False
        self._nodes: dict[int, KafkaNode] = {}
        self.cluster_id: str | None = None
        self.startup_seconds: float | None = None
        """Wall time of the last :meth:`start_all`, jar resolution excluded."""

    # -- lifecycle -----------------------------------------------------------------------
    def start_all(self) -> KafkaCluster:
        """Start every node that is not running and wait until all of them are brokers in the metadata."""
        if not self._nodes:
            self._build()
        started = time.monotonic()
        pending = [node for node in self._nodes.values() if not node.running]
        with ThreadPoolExecutor(max_workers=len(self._nodes)) as pool:
            list(pool.map(lambda node: node.format(self._require_cluster_id()), pending))
        for node in pending:
            node.start()
        for node in pending:
            node.wait_ready(self._start_timeout)
        admin.wait_until_ready(self.bootstrap_servers, set(self._nodes), self._start_timeout)
        self.startup_seconds = time.monotonic() - started
        logger.info("Kafka cluster of %d node(s) ready at %s in %.1fs", self.size, self.bootstrap_servers,
                    self.startup_seconds)
        return self

    def stop_all(self, timeout: float = 20.0) -> None:
        """Stop every node cleanly (SIGTERM to all at once, SIGKILL after ``timeout``); data stays on disk."""
        for node in self._nodes.values():
            node.terminate()
        for node in self._nodes.values():
            node.stop(timeout)

    def close(self) -> None:
        """Stop every node and, unless a ``data_dir`` was given, delete the cluster's folder.

        A temporary cluster's data is thrown away, so its nodes are simply killed (fast),
        except one still writing the class-data archive, which needs a clean exit.
        """
        try:
            if self._owns_root:
                for node in self._nodes.values():
                    if not node.dumps_cds:
                        node.kill()
            self.stop_all()
        finally:
            if self._owns_root and self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                remove_at_exit(self._root, remove=False)

    def __enter__(self) -> KafkaCluster:
        try:
            return self.start_all()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _build(self) -> None:
        settings = self._settings or HarnessSettings()
        java, lib = resolve_kafka(settings)
        if self._data_dir is None:
            self._root, self._owns_root = Path(tempfile.mkdtemp(prefix="shopstream-kafka-")), True
            remove_at_exit(self._root)
        else:
            self._root = self._data_dir
        layout = plan_layout(self._root, self.size, self._ports, self._extra_listeners, self._overrides)
        self.cluster_id = layout.cluster_id
        jvm = self._jvm or JvmOptions(heap=settings.kafka_heap)
        cds = CdsArchive(lib.parent, java.version_text)
        self._nodes = {spec.node_id: KafkaNode(spec, self.size, java.path, lib, jvm, cds) for spec in layout.specs}

    def _require_cluster_id(self) -> str:
        if self.cluster_id is None:
            raise HarnessError("cluster not built")
        return self.cluster_id

    # -- faults -------------------------------------------------------------------------
    def node(self, node_id: int) -> KafkaNode:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise HarnessError(f"no node {node_id} (started: {sorted(self._nodes)})") from None

    def kill(self, node_id: int) -> None:
        """SIGKILL one node: a crash, no clean shutdown, no flushed log tail."""
        self.node(node_id).kill()
        logger.info("killed Kafka node %d", node_id)

    def stop(self, node_id: int, timeout: float = 20.0) -> None:
        """Stop one node cleanly (controlled shutdown moves its leaderships away first)."""
        self.node(node_id).stop(timeout)

    def start(self, node_id: int, wait: bool = True) -> None:
        """Restart a stopped or killed node on its own folder and ports.

        With ``wait`` it blocks until the node is a broker again, which needs a controller
        quorum (a majority of nodes) to be running.
        """
        node = self.node(node_id)
        node.start()
        if wait:
            node.wait_ready(self._start_timeout)

    def freeze(self, node_id: int) -> None:
        """SIGSTOP one node: it holds its sockets and leases but answers nothing."""
        self.node(node_id).freeze()

    def thaw(self, node_id: int) -> None:
        self.node(node_id).thaw()

    def thaw_all(self) -> None:
        for node in self._nodes.values():
            if node.frozen:
                node.thaw()

    def heal(self) -> None:
        """Undo every fault: thaw frozen nodes, restart stopped ones, wait until all are brokers."""
        self.thaw_all()
        self.start_all()

    # -- addresses ----------------------------------------------------------------------
    @property
    def nodes(self) -> list[KafkaNode]:
        return list(self._nodes.values())

    @property
    def bootstrap_servers(self) -> str:
        """``host:port,...`` of every node's PLAINTEXT listener."""
        if not self._nodes:
            raise HarnessError("the cluster has not been started")
        return ",".join(node.bootstrap for node in self._nodes.values())

    def bootstrap_for(self, listener: str) -> str:
        """``host:port,...`` of an extra listener (see :class:`ListenerSpec`)."""
        addresses = [f"{HOST}:{extra.port}" for node in self._nodes.values()
                     for extra in node.spec.extra_listeners if extra.name == listener]
        if not addresses:
            raise HarnessError(f"no listener named {listener!r}")
        return ",".join(addresses)

    def leader_of(self, topic: str, partition: int) -> int:
        """The node id leading ``topic[partition]`` as the running nodes see it (-1: no leader)."""
        running = ",".join(node.bootstrap for node in self._nodes.values() if node.running and not node.frozen)
        return admin.leader_of(running or self.bootstrap_servers, topic, partition)
