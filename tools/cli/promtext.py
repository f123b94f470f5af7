"""Read a service's /metrics page into the few numbers people look at."""

from __future__ import annotations

import math
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class LiveQuality:
    """What the live-quality monitor measured for one (service, model version) over its window."""

    window: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)


@dataclass
class ServiceSnapshot:
    consumed: float = 0.0
    scored: float = 0.0
    dead_lettered: float = 0.0
    lag: float = 0.0
    batches: float = 0.0
    batch_events: float = 0.0
    ready: bool = False
    model_version: str = "-"
    provider: str = "-"
    e2e_buckets: dict[float, float] = field(default_factory=dict)
    live: dict[tuple[str, str], LiveQuality] = field(default_factory=dict)
    """(monitored service, model version) → live quality; only the monitor exports these."""
    decisions: dict[str, float] = field(default_factory=dict)
    """Outputs per decision (fraud: approve/review/decline; support: route/escalate)."""
    routed: dict[str, float] = field(default_factory=dict)
    """Support: messages per queue."""
    escalations: dict[str, float] = field(default_factory=dict)
    """Support: escalated messages per reason (one with both reasons counts in both)."""

    @property
    def mean_batch(self) -> float:
        return self.batch_events / self.batches if self.batches else 0.0

    def e2e_quantile(self, q: float) -> float:
        return histogram_quantile(q, self.e2e_buckets)


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus-style linear interpolation inside the bucket holding the quantile."""
    if not buckets:
        return math.nan
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total == 0:
        return math.nan
    rank, prev_bound, prev_count = q * total, 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            span = count - prev_count
            return prev_bound + (bound - prev_bound) * ((rank - prev_count) / span if span else 0)
        prev_bound, prev_count = bound, count
    return prev_bound


def parse(text: str) -> ServiceSnapshot:
    snap = ServiceSnapshot()
    buckets: dict[float, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "shopstream_events_consumed_total":
                snap.consumed += value
            elif name == "shopstream_events_scored_total":
                snap.scored += value
            elif name == "shopstream_events_dead_lettered_total":
                snap.dead_lettered += value
            elif name == "shopstream_consumer_lag":
                snap.lag += value
            elif name == "shopstream_batch_size_count":
                snap.batches += value
            elif name == "shopstream_batch_size_sum":
                snap.batch_events += value
            elif name == "shopstream_ready":
                snap.ready = value == 1
            elif name == "shopstream_model_info" and value == 1:
                snap.model_version, snap.provider = labels["model_version"], labels["provider"]
            elif name == "shopstream_end_to_end_seconds_bucket":
                buckets[float(labels["le"])] += value
            elif name in COUNTS:
                counts = getattr(snap, COUNTS[name][0])
                counts[labels[COUNTS[name][1]]] = counts.get(labels[COUNTS[name][1]], 0.0) + value
            elif name in LIVE_FAMILIES:
                _add_live(snap.live.setdefault((labels["service"], labels["model_version"]), LiveQuality()),
                          name, labels, value)
    snap.e2e_buckets = dict(buckets)
    return snap


COUNTS = {
    "shopstream_business_decisions_total": ("decisions", "decision"),
    "shopstream_business_support_routed_total": ("routed", "queue"),
    "shopstream_business_support_escalations_total": ("escalations", "reason"),
}
"""Counter sample → (snapshot field, label it is counted by)."""
LIVE_FAMILIES = frozenset({"shopstream_live_quality", "shopstream_live_quality_baseline", "shopstream_live_window"})


def _add_live(live: LiveQuality, name: str, labels: dict[str, str], value: float) -> None:
    if name == "shopstream_live_window":
        live.window = value
    elif name == "shopstream_live_quality":
        live.metrics[labels["metric"]] = value
    else:
        live.baseline[labels["metric"]] = value


def scrape(port: int, timeout: float = 1.0) -> ServiceSnapshot | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as resp:
            return parse(resp.read().decode())
    except OSError:
        return None
