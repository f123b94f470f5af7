"""The demo's live terminal view: per-service throughput, latency, lag, live quality and recent scores.

Live quality is read from the monitor's ``/metrics`` (the same gauges Prometheus scrapes): each
service's headline measure beside its baseline on the same outcomes, and every measure below.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections import OrderedDict, deque
from types import TracebackType

from confluent_kafka import Consumer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from services.registry import load_service
from shared.settings import KafkaSettings
from tools.cli.describe import describe_record
from tools.cli.promtext import LiveQuality, ServiceSnapshot, scrape
from tools.loadgen.generator import LoadGenerator
from tools.supervisor import ServiceProcess

SAMPLES_PER_SERVICE = 3
MONITOR = "monitor"
SUPPORT = "support"
HEADLINE = {"ad_ctr": "auc", "fraud": "pr_auc", "pricing": "profit_vs_oracle", "recommendation": "hit_at_10"}
"""The measure shown beside each service's throughput."""
MEASURE_ORDER = ("auc", "log_loss", "ece", "predicted_ctr", "observed_ctr", "pr_auc", "recall_review",
                 "recall_decline", "fraud_rate", "profit_vs_oracle", "wape", "hit_at_10", "ndcg_at_10", "coverage")


TRAFFIC = frozenset({"observed_ctr", "fraud_rate"})
"""Measures of the traffic, not of the model: the baseline's value is the same number."""


def measure_text(live: LiveQuality, metric: str) -> str:
    """``auc 0.712 (base 0.500)``; the baseline part only when the monitor has one that can differ."""
    base = None if metric in TRAFFIC else live.baseline.get(metric)
    return f"{metric} {live.metrics[metric]:.3f}" + ("" if base is None else f" (base {base:.3f})")


def live_line(service: str, version: str, live: LiveQuality) -> str:
    """``ad_ctr v0001  auc 0.712 (base 0.500)  log_loss ...  n=1,234``: every measure, in a fixed order."""
    order = [m for m in MEASURE_ORDER if m in live.metrics] + sorted(set(live.metrics) - set(MEASURE_ORDER))
    return "  ".join([f"{service} {version}", *(measure_text(live, m) for m in order), f"n={live.window:,.0f}"])


def business_line(snap: ServiceSnapshot) -> str:
    """Support's ``queues payments=12 cards=5  escalated 3/17 (17.6 %: low_confidence=2 repeated_problem=1)``."""
    queues = " ".join(f"{q}={n:.0f}" for q, n in sorted(snap.routed.items(), key=lambda kv: (-kv[1], kv[0])))
    total = sum(snap.routed.values())
    escalated = snap.decisions.get("escalate", 0.0)
    share = f"{100 * escalated / total:.1f} %" if total else "-"
    reasons = " ".join(f"{r}={n:.0f}" for r, n in sorted(snap.escalations.items()))
    return f"queues {queues}  escalated {escalated:.0f}/{total:.0f} ({share}{': ' + reasons if reasons else ''})"


def live_of(snapshots: dict[str, ServiceSnapshot | None]) -> dict[tuple[str, str], LiveQuality]:
    monitor = snapshots.get(MONITOR)
    return {} if monitor is None else monitor.live


def headline(service: str, version: str, live: dict[tuple[str, str], LiveQuality]) -> str:
    """The served version's headline measure, or "-" until the monitor has one."""
    entry = live.get((service, version))
    metric = HEADLINE.get(service, "")
    if entry is None or metric not in entry.metrics:
        return "-"
    return f"{measure_text(entry, metric)} n={entry.window:,.0f}"


class MessageTexts:
    """What customers wrote, by message id (the newest ``capacity``): support's intents carry the
    message id, not the words, so the tap reads the messages too and shows both."""

    def __init__(self, capacity: int = 5_000) -> None:
        self.capacity = capacity
        self._texts: OrderedDict[str, str] = OrderedDict()

    def add(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
            self._texts[str(message["message_id"])] = str(message["text"])
        except (ValueError, KeyError, TypeError):
            return  # a malformed message (the service dead-letters it); nothing to show
        if len(self._texts) > self.capacity:
            self._texts.popitem(last=False)

    def join(self, record: dict[str, object]) -> dict[str, object]:
        text = self._texts.get(str(record.get("message_id")))
        return record if text is None else {**record, "text": text}


class SampleTap:
    """Reads the services' output topics from the latest offset and keeps a few recent records."""

    def __init__(self, kafka: KafkaSettings, services: list[str]) -> None:
        self._topics = {load_service(s).settings_class().output_topic: s for s in services}
        self._messages = {load_service(s).settings_class().input_topic for s in services if s == SUPPORT}
        self.texts = MessageTexts()
        self._kafka = kafka
        self._records: dict[str, deque[tuple[str, dict[str, object]]]] = {
            s: deque(maxlen=SAMPLES_PER_SERVICE) for s in services}
        self.first_score_at: float | None = None
        """``time.monotonic()`` when the first score of any service was read."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sample-tap", daemon=True)

    @property
    def samples(self) -> dict[str, list[str]]:
        """Service → its recent records described, oldest first. Described when asked for: a
        message may be read after the intent scored from it (no order holds across topics)."""
        return {service: [describe_record(topic, self.texts.join(record)) for topic, record in list(records)]
                for service, records in self._records.items()}

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
        consumer.subscribe([*self._topics, *self._messages])
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.3)
                if msg is None or msg.error() is not None or msg.value() is None:
                    continue
                if msg.topic() in self._messages:
                    self.texts.add(msg.value() or b"")
                    continue
                service = self._topics.get(msg.topic() or "")
                if service is not None:
                    self.first_score_at = self.first_score_at or time.monotonic()
                    self._records[service].append((msg.topic() or "", json.loads(msg.value() or b"{}")))
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
        columns = ("service", "in", "scored", "DLQ", "p50", "p99", "batch", "lag", "model", "provider", "live quality",
                   "ready")
        for column in columns:
            table.add_column(column, justify="left" if column in ("service", "model", "provider", "live quality")
                             else "right")
        live = live_of(snapshots)
        for name, snap in snapshots.items():
            if snap is None:
                table.add_row(name, *["-"] * 10, "[red]down[/red]")
                continue
            table.add_row(
                name, f"{snap.consumed:.0f}", f"{snap.scored:.0f}", f"{snap.dead_lettered:.0f}",
                _ms(snap.e2e_quantile(0.5)), _ms(snap.e2e_quantile(0.99)), f"{snap.mean_batch:.1f}",
                f"{snap.lag:.0f}", snap.model_version, snap.provider.replace("ExecutionProvider", ""),
                headline(name, snap.model_version, live), "[green]yes[/green]" if snap.ready else "[yellow]no[/yellow]",
            )
        return table

    def quality(self, snapshots: dict[str, ServiceSnapshot | None]) -> Table:
        """Every measure of every (service, version) the monitor has joined outcomes for."""
        table = Table(title="live quality (monitor: predictions joined with outcomes; base = simple baseline)",
                      show_header=False)
        table.add_column("measures")
        for (service, version), entry in sorted(live_of(snapshots).items()):
            table.add_row(live_line(service, version, entry))
        return table

    def samples(self) -> Table:
        table = Table(title="recent scores", show_header=False)
        table.add_column("service")
        table.add_column("score")
        for name, lines in self._tap.samples.items():
            for line in lines:
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
                snapshots = self.snapshots()
                display.update(Group(self.table(snapshots), self.quality(snapshots), self.samples()))
                time.sleep(1.0)

    def final(self) -> dict[str, ServiceSnapshot | None]:
        return self.snapshots()

    def print_summary(self, snapshots: dict[str, ServiceSnapshot | None]) -> None:
        console = Console(width=max(Console().width, 150))
        console.print(self.table(snapshots))
        console.print(self.quality(snapshots))
        console.print(self.samples())
        for name, snap in snapshots.items():
            scored = 0.0 if snap is None else snap.scored
            console.print(f"summary {name}: scored={scored:.0f} "
                          f"dlq={0.0 if snap is None else snap.dead_lettered:.0f}")
        for name, lines in self._tap.samples.items():
            if lines:  # one plain line per service, never wrapped: what CI logs and greps
                console.print(f"sample {name}: {lines[-1]}", soft_wrap=True)
        for name, snap in snapshots.items():
            if snap is not None and snap.routed:
                console.print(f"business {name}: {business_line(snap)}", soft_wrap=True)
        for (service, version), entry in sorted(live_of(snapshots).items()):
            console.print(f"live {live_line(service, version, entry)}", soft_wrap=True)
