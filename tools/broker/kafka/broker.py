"""One real Apache Kafka broker (KRaft, broker + controller in one JVM) for tests and ``shopstream broker``.

    with KafkaBroker() as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})

The jars come from Maven Central once (see :mod:`jars`); Java 17+ must be installed.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType

from tools.broker.errors import HarnessError
from tools.broker.kafka.cluster import KafkaCluster
from tools.broker.kafka.config import ListenerSpec
from tools.broker.kafka.jars import ensure_kafka_jars
from tools.broker.kafka.node import KafkaNode
from tools.broker.kafka.process import JvmOptions
from tools.broker.settings import HarnessSettings

__all__ = ["KafkaBroker", "ensure_kafka_jars", "run_broker_forever"]

DEFAULT_PORT = 9092


class KafkaBroker:
    """A single-node cluster on loopback: free ports unless ``port`` is given, a temp dir unless ``data_dir`` is.

    ``overrides`` are extra server.properties entries (applied last); ``extra_listeners``
    add listeners with their own security protocol (``port=0`` picks a free one). A
    broker given a ``data_dir`` can be stopped and started again on the same data.
    """

    def __init__(self, *, port: int | None = None, data_dir: Path | None = None,
                 overrides: Mapping[str, str] | None = None, extra_listeners: Sequence[ListenerSpec] = (),
                 settings: HarnessSettings | None = None, jvm: JvmOptions | None = None,
                 start_timeout: float = 90.0) -> None:
        self._cluster = KafkaCluster(1, data_dir=data_dir, ports=[port] if port else None, overrides=overrides,
                                     extra_listeners=extra_listeners, settings=settings, jvm=jvm,
                                     start_timeout=start_timeout)

    def start(self) -> KafkaBroker:
        """Resolve jars if needed, format on first use, start the JVM and wait until it serves metadata."""
        self._cluster.start_all()
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; the data stays until :meth:`close`."""
        self._cluster.stop_all(timeout)

    def kill(self) -> None:
        """SIGKILL the JVM (a crash)."""
        self._cluster.kill(1)

    def close(self) -> None:
        """Stop, and delete the temporary folder if the broker made one."""
        self._cluster.close()

    @property
    def node(self) -> KafkaNode:
        return self._cluster.node(1)

    @property
    def running(self) -> bool:
        return self._cluster.node(1).running

    @property
    def bootstrap_servers(self) -> str:
        return self._cluster.bootstrap_servers

    def bootstrap_for(self, listener: str) -> str:
        return self._cluster.bootstrap_for(listener)

    @property
    def startup_seconds(self) -> float | None:
        return self._cluster.startup_seconds

    def __enter__(self) -> KafkaBroker:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def run_broker_forever(port: int | None = None, data_dir: Path | None = None) -> None:
    """Run one broker on ``port`` (default 9092) until Ctrl-C or SIGTERM, then stop it cleanly.

    Meant for the ``shopstream broker`` command: it prints the bootstrap address on stdout.
    With ``data_dir`` the topics survive a restart. Raises :class:`HarnessError` if the
    broker cannot start or dies while running. Call it from the main thread (signals).
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Explicit handlers: a shell starts background jobs with SIGINT ignored, which would
    # otherwise make Ctrl-C (or `kill -INT`) a no-op.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with KafkaBroker(port=port or DEFAULT_PORT, data_dir=data_dir) as broker:
            print(f"Kafka broker ready at {broker.bootstrap_servers} (Ctrl-C to stop)", flush=True)
            while not stop.wait(1.0):
                if not broker.running:
                    raise HarnessError(f"the broker exited:\n{broker.node.log_tail()}")
            print("stopping the Kafka broker...", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
