"""Helpers of the broker fault tests (tests/integration/test_faults.py, test_disk_full.py): the echo
service as a supervised subprocess, a background producer, and the count by input offset.

Every fault test counts by *input offset*: the set of (partition, offset) pairs in the input topic
must equal the set of ``x-source-partition``/``x-source-offset`` pairs in the output.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from shared.schemas import headers as h
from tools.supervisor import Collected, ServiceProcess, collect, http_get, produce, wait_until

PARTITIONS = 4
"""Partitions of every topic the fault tests create."""


@dataclass
class Topics:
    input: str
    output: str
    dlq: str


def echo_env(bootstrap: str, topics: Topics, **extra: str) -> dict[str, str]:
    return {
        "INPUT_TOPIC": topics.input, "OUTPUT_TOPIC": topics.output, "GROUP_ID": f"g-{topics.input}",
        "KAFKA__BOOTSTRAP_SERVERS": bootstrap, "RUNTIME__SESSION_TIMEOUT_MS": "6000",
        "RUNTIME__CREATE_TOPICS": "false", "INSTANCE_ID": "echo-0", **extra,
    }


def events(start: int, stop: int) -> list[tuple[bytes | None, bytes | None]]:
    return [(f"u{i % 500}".encode(), json.dumps({"id": f"u{i % 500}", "value": float(i)}).encode())
            for i in range(start, stop)]


IDEMPOTENT = {"enable.idempotence": True, "delivery.timeout.ms": 120_000}


def produce_in_background(bootstrap: str | Callable[[], str], topic: str, count: int, seconds: float,
                          chunks: int = 20, config: dict[str, Any] | None = None,
                          partitions: Sequence[int] = ()) -> threading.Thread:
    """``count`` events spread over about ``seconds``, faults or not, one fresh producer per chunk
    (idempotent unless ``config`` says otherwise); ``bootstrap`` may be asked anew for each chunk.
    With ``partitions``, only to those (in turn)."""

    def run() -> None:
        for chunk in range(chunks):
            servers = bootstrap() if callable(bootstrap) else bootstrap
            produce(servers, topic, events(chunk * count // chunks, (chunk + 1) * count // chunks),
                    partitions=partitions, **(config or IDEMPOTENT))
            time.sleep(seconds / chunks)

    thread = threading.Thread(target=run, name="fault-producer", daemon=True)
    thread.start()
    return thread


class Supervised:
    """Restarts the service as an orchestrator would: whenever it exits (``restartPolicy: Always``),
    and when its liveness probe fails (``/healthz`` answers 503 once the loop has not turned for
    60 s), counting both in ``restarts``.

    The runtime is crash-only for fatal client errors (a fenced static member, a fenced
    transactional producer): the process exits and a restart resumes from committed offsets.
    """

    def __init__(self, service: ServiceProcess) -> None:
        self.service = service
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def __enter__(self) -> Supervised:
        self.service.start()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        if self.service.alive():
            self.service.kill()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            if self._stop.is_set():
                return
            if self.service.alive() and http_get(self.service.metrics_port, "/healthz")[0] == 503:
                self.service.kill()  # the kubelet's answer to a failed liveness probe
            if not self.service.alive() and not self._stop.is_set():
                self.restarts += 1
                self.service.start()


def input_offsets(bootstrap: str, topic: str) -> set[tuple[int, int]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex}"})
    try:
        marks = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(PARTITIONS)]
    finally:
        consumer.close()
    return {(p, o) for p, (low, high) in enumerate(marks) for o in range(low, high)}


def sources(records: list[Collected]) -> Counter[tuple[int, int]]:
    return Counter((int(r.headers[h.SOURCE_PARTITION]), int(r.headers[h.SOURCE_OFFSET])) for r in records)


@dataclass
class Outcome:
    sent: int
    scored: int
    lost: int
    duplicates: int
    seconds_to_all_scored: float


def settle(bootstrap: str, topics: Topics, since: float, label: str, timeout_s: float = 120) -> Outcome:
    """Read the output until every input offset has a score (or the timeout); print the figures."""
    expected = input_offsets(bootstrap, topics.input)
    out = collect(bootstrap, [topics.output], lambda rs: expected <= set(sources(rs)), timeout_s=timeout_s)
    seen = sources(out)
    outcome = Outcome(len(expected), len(expected & set(seen)), len(expected - set(seen)),
                      sum(seen.values()) - len(seen), time.monotonic() - since)
    print(f"\n[{label}] sent={outcome.sent} scored={outcome.scored} lost={outcome.lost} "
          f"duplicates={outcome.duplicates} all_scored_after={outcome.seconds_to_all_scored:.1f}s")
    return outcome


def scored_total(service: ServiceProcess) -> float:
    found = re.findall(r"^shopstream_events_scored_total\{[^}]*\} ([0-9.e+]+)$", service.metrics(), re.M)
    return sum(float(v) for v in found)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    started = time.monotonic()
    assert wait_until(condition, timeout_s, 0.25), f"timed out after {timeout_s:.0f}s waiting for {what}"
    return time.monotonic() - started
