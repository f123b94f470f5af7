"""The demo's live terminal view: per-service throughput, latency, lag and recent scores."""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections import deque
from types import TracebackType

from confluent_kafka import Consumer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from services.registry import load_service
from shared.settings import KafkaSettings
from tools.cli.describe import describe_record
from tools.cli.promtext import ServiceSnapshot, scrape
from tools.loadgen.generator import LoadGenerator
from tools.supervisor import ServiceProcess

SAMPLES_PER_SERVICE = 3


class SampleTap:
    """Reads the services' output topics from the latest offset and keeps a few recent records."""

    def __init__(self, kafka: KafkaSettings, services: list[str]) -> None:
        self._topics = {load_service(s).settings_class().output_topic: s for s in services}
        self._kafka = kafka
        self.samples: dict[str, deque[str]] = {s: deque(maxlen=SAMPLES_PER_SERVICE) for s in services}
        self.first_score_at: float | None = None
        """``time.monotonic()`` when the first score of any service was read."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sample-tap", daemon=True)

    def __enter__(self) -> SampleTap:
        self._thread.start()
        return self

    def __exit__(self, *_: object | TracebackType) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        consumer = Consumer({**self._kafka.client_config("shopstream-demo-tap"),
                             "group.id": f"shopstream-demo-tap-{uuid.uuid4().hex}",
                             "auto.offset.reset": "latest", "enable.auto.commit": False,
                             # a short session timeout: Tansu holds a group join until it expires
                             "session.timeout.ms": 6000, "isolation.level": "read_committed"})
        consumer.subscribe(list(self._topics))
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.3)
                if msg is None or msg.error() is not None or msg.value() is None:
                    continue
                service = self._topics.get(msg.topic() or "")
                if service is not None:
                    self.first_score_at = self.first_score_at or time.monotonic()
                    self.samples[service].append(describe_record(msg.topic() or "", json.loads(msg.value() or b"{}")))
        finally:
            consumer.close()


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f} ms"


class DemoView:
    def __init__(self, processes: dict[str, ServiceProcess], tap: SampleTap, generator: LoadGenerator) -> None:
        self._processes = processes
        self._tap = tap
        self._generator = generator
        self._started = time.monotonic()

    def snapshots(self) -> dict[str, ServiceSnapshot | None]:
        return {name: scrape(p.metrics_port) for name, p in self._processes.items()}

    def table(self, snapshots: dict[str, ServiceSnapshot | None]) -> Table:
        elapsed = time.monotonic() - self._started
        table = Table(title=f"shopstream demo — {elapsed:.0f}s, produced {self._generator.sent} events")
        for column in ("service", "in", "scored", "DLQ", "p50", "p99", "batch", "lag", "model", "provider", "ready"):
            table.add_column(column, justify="left" if column in ("service", "model", "provider") else "right")
        for name, snap in snapshots.items():
            if snap is None:
                table.add_row(name, *["-"] * 9, "[red]down[/red]")
                continue
            table.add_row(
                name, f"{snap.consumed:.0f}", f"{snap.scored:.0f}", f"{snap.dead_lettered:.0f}",
                _ms(snap.e2e_quantile(0.5)), _ms(snap.e2e_quantile(0.99)), f"{snap.mean_batch:.1f}",
                f"{snap.lag:.0f}", snap.model_version, snap.provider.replace("ExecutionProvider", ""),
                "[green]yes[/green]" if snap.ready else "[yellow]no[/yellow]",
            )
        return table

    def samples(self) -> Table:
        table = Table(title="recent scores", show_header=False)
        table.add_column("service")
        table.add_column("score")
        for name, lines in self._tap.samples.items():
            for line in list(lines):
                table.add_row(name, line)
        return table

    def run(self, duration_s: float | None, live: bool) -> None:
        deadline = time.monotonic() + duration_s if duration_s else math.inf
        if not live:
            while time.monotonic() < deadline:
                time.sleep(0.5)
            return
        with Live(refresh_per_second=2, screen=False) as display:
            while time.monotonic() < deadline:
                display.update(Group(self.table(self.snapshots()), self.samples()))
                time.sleep(1.0)

    def final(self) -> dict[str, ServiceSnapshot | None]:
        return self.snapshots()

    def print_summary(self, snapshots: dict[str, ServiceSnapshot | None]) -> None:
        console = Console(width=max(Console().width, 150))
        console.print(self.table(snapshots))
        console.print(self.samples())
        for name, snap in snapshots.items():
            scored = 0.0 if snap is None else snap.scored
            console.print(f"summary {name}: scored={scored:.0f} "
                          f"dlq={0.0 if snap is None else snap.dead_lettered:.0f}")
