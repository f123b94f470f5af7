"""Helpers for tests and benchmarks that run services against a real broker.

A service runs either in a thread (:func:`service_in_thread`, for fast assertions on its
internals) or as a real ``shopstream serve`` subprocess (:class:`ServiceProcess`, for kill,
restart and signal tests).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from shared.runtime.app import ServiceApp
from shared.runtime.scorer import Scorer
from shared.settings import ServiceSettings

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]],
            *, partitions: Sequence[int] = (), **config: Any) -> None:
    """Produce keyed records and wait for every acknowledgement; with ``partitions``, the records
    go to those partitions in turn instead of where their keys hash. ``config`` is producer config,
    dots spelled as underscores (``enable_idempotence=True``) or passed as ``**{"a.b": v}``."""
    settings = {name.replace("_", "."): value for name, value in config.items()}
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random", **settings})
    failures: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for i, (key, value) in enumerate(records):
        partition = partitions[i % len(partitions)] if partitions else -1  # -1: by the key's hash
        while True:
            try:
                producer.produce(topic, value, key, partition, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
    remaining = producer.flush(60)
    if remaining or failures:
        raise RuntimeError(f"{remaining} unacknowledged, failures: {failures[:3]}")


@dataclass
class Collected:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int
    offset: int


def collect(
    bootstrap: str,
    topics: list[str],
    stop_when: Callable[[list[Collected]], bool],
    timeout_s: float = 60.0,
    read_committed: bool = True,
) -> list[Collected]:
    """Read ``topics`` from the beginning until ``stop_when(records)`` or the timeout."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"collector-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
    })
    consumer.subscribe(topics)
    records: list[Collected] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not stop_when(records):
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is None:
                    raw_headers = msg.headers() or []
                    pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
                    headers = {k: v.encode() if isinstance(v, str) else (v or b"") for k, v in pairs}
                    records.append(Collected(msg.topic() or "", msg.key(), msg.value(), headers,
                                             msg.partition() or 0, msg.offset() or 0))
    finally:
        consumer.close()
    return records


@contextmanager
def service_in_thread(settings: ServiceSettings, scorer: Scorer[Any]) -> Iterator[ServiceApp]:
    """Run a service in a background thread; stops and joins it on exit."""
    app = ServiceApp(settings, scorer)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            app.run()
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"service-{settings.service_name}", daemon=True)
    thread.start()
    try:
        yield app
    finally:
        app.stop()
        thread.join(settings.runtime.shutdown_deadline_s + 10)
    if errors:
        raise errors[0]


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


class ServiceProcess:
    """``shopstream serve <service>`` in a subprocess, configured through its env prefix."""

    def __init__(self, service: str, settings_env: dict[str, str], log_path: Path | None = None) -> None:
        self.service = service
        self.metrics_port = free_port()
        prefix = f"SHOPSTREAM_{service.upper()}_"
        self.env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
        self.env.update({f"{prefix}{k}": v for k, v in settings_env.items()})
        self.env[f"{prefix}METRICS__PORT"] = str(self.metrics_port)
        self.env[f"{prefix}METRICS__HOST"] = "127.0.0.1"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.cli.main", "serve", self.service],
            env=self.env, cwd=REPO_ROOT, stdout=log, stderr=log,
        )
        return self

    def ready(self) -> bool:
        return http_get(self.metrics_port, "/readyz")[0] == 200

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        if not wait_until(self.ready, timeout_s):
            raise TimeoutError(f"{self.service} not ready within {timeout_s}s (log: {self.log_path})")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout_s: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> str:
        return http_get(self.metrics_port, "/metrics")[1]

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        if self.alive():
            self.kill()
