"""The monitor's Prometheus series, on the service's own registry (docs/live-quality.md)."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.monitor.windows import Measures

JOIN_DELAY_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 86400)


class LiveQualityMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["service", "model_version", "metric"]
        self.quality = Gauge("shopstream_live_quality",
                             "A model's quality measured on joined outcomes, over the window", labels,
                             registry=registry)
        self.baseline = Gauge("shopstream_live_quality_baseline",
                              "The simple baseline's quality on the same outcomes", labels, registry=registry)
        self.outcomes = Counter("shopstream_live_outcomes", "Predictions joined with their outcome",
                                ["service", "model_version"], registry=registry)
        self.unmatched = Counter("shopstream_live_unmatched",
                                 "Predictions or outcomes dropped after the wait without their other half",
                                 ["service", "reason"], registry=registry)
        self.window = Gauge("shopstream_live_window", "Joined samples the quality gauges are computed over",
                            ["service", "model_version"], registry=registry)
        self.join_delay = Histogram("shopstream_live_join_delay_seconds",
                                    "Outcome event time minus prediction event time", ["service"],
                                    buckets=JOIN_DELAY_BUCKETS, registry=registry)

    def publish(self, service: str, version: str, model: Measures, baseline: Measures, window: int) -> None:
        """Set the gauges of one (service, version); a measure the window cannot give is left unset."""
        for gauge, measures in ((self.quality, model), (self.baseline, baseline)):
            for metric, value in measures.items():
                if not math.isnan(value):
                    gauge.labels(service, version, metric).set(value)
        self.window.labels(service, version).set(window)
