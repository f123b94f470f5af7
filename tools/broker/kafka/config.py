"""server.properties and log4j2 configuration of one combined KRaft node (broker + controller).

Every node has two listeners of its own: ``PLAINTEXT`` (clients and replication) and
``CONTROLLER`` (the Raft quorum). Further listeners, e.g. a ``SASL_SSL`` one for the
security tests, come in as :class:`ListenerSpec`; anything else (authorizer, JAAS, TLS
stores) as plain ``overrides``, which are applied last and win.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.broker.errors import HarnessError

HOST = "127.0.0.1"
_RESERVED_LISTENERS = frozenset({"PLAINTEXT", "CONTROLLER"})
_LISTENER_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")

LOG4J2_PROPERTIES = """\
# Written by shopstream's Kafka harness. The JVM's stdout/stderr go to broker.log.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
# The config dumps are ~400 lines per client and server; they drown what matters.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


@dataclass(frozen=True)
class ListenerSpec:
    """An extra listener: ``name://host:port`` speaking ``security_protocol``."""

    name: str
    port: int
    security_protocol: str = "PLAINTEXT"
    host: str = HOST

    def __post_init__(self) -> None:
        if not _LISTENER_NAME.match(self.name) or self.name in _RESERVED_LISTENERS:
            raise HarnessError(f"listener name {self.name!r} must be upper case and not PLAINTEXT/CONTROLLER")


@dataclass(frozen=True)
class NodeSpec:
    """Everything that identifies one node; kept across restarts so it comes back the same."""

    node_id: int
    port: int
    controller_port: int
    root: Path
    voters: tuple[tuple[int, int], ...]
    """``(node_id, controller_port)`` of every voter in the quorum, this node included."""
    extra_listeners: tuple[ListenerSpec, ...] = ()
    overrides: Mapping[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def properties_path(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j_path(self) -> Path:
        return self.root / "log4j2.properties"

    @property
    def log_path(self) -> Path:
        return self.root / "broker.log"

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").is_file()


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago (all held until all are picked)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def cluster_defaults(size: int) -> dict[str, str]:
    """Replication and timing settings for a cluster of ``size`` nodes (1 for a lone broker)."""
    rf = str(min(size, 3))
    min_isr = "2" if size >= 3 else "1"
    props = {
        "default.replication.factor": rf,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": str(size),
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": str(size),
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        # The default 128 MiB compaction buffer is allocated at start-up: ~2 s and ~130 MiB of RSS.
        "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
    }
    if size > 1:
        # Fence a dead node (and so shrink ISRs) in seconds, not the default 9 s / 30 s.
        props |= {"broker.heartbeat.interval.ms": "500", "broker.session.timeout.ms": "3000",
                  "replica.lag.time.max.ms": "5000"}
    return props


def server_properties(spec: NodeSpec, size: int) -> dict[str, str]:
    """The full server.properties of ``spec`` in a cluster of ``size`` nodes."""
    listeners = [f"PLAINTEXT://{HOST}:{spec.port}", f"CONTROLLER://{HOST}:{spec.controller_port}"]
    advertised = [f"PLAINTEXT://{HOST}:{spec.port}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    for extra in spec.extra_listeners:
        listeners.append(f"{extra.name}://{extra.host}:{extra.port}")
        advertised.append(f"{extra.name}://{extra.host}:{extra.port}")
        protocols.append(f"{extra.name}:{extra.security_protocol}")
    props = {
        "process.roles": "broker,controller",
        "node.id": str(spec.node_id),
        "controller.quorum.voters": ",".join(f"{nid}@{HOST}:{port}" for nid, port in spec.voters),
        "listeners": ",".join(listeners),
        "advertised.listeners": ",".join(advertised),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": ",".join(protocols),
        "log.dirs": str(spec.data_dir),
    }
    return props | cluster_defaults(size) | dict(spec.overrides)


def render_properties(props: Mapping[str, str]) -> str:
    """``key=value`` lines; backslashes escaped as java.util.Properties expects."""
    return "".join(f"{key}={value.replace(chr(92), chr(92) * 2)}\n" for key, value in props.items())


def write_node_config(spec: NodeSpec, size: int) -> None:
    """Write server.properties and log4j2.properties into the node's folder."""
    spec.root.mkdir(parents=True, exist_ok=True)
    spec.properties_path.write_text(render_properties(server_properties(spec, size)))
    spec.log4j_path.write_text(LOG4J2_PROPERTIES)


def voters_of(node_ids: Sequence[int], controller_ports: Sequence[int]) -> tuple[tuple[int, int], ...]:
    return tuple(zip(node_ids, controller_ports, strict=True))
