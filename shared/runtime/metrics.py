"""Every Prometheus metric the runtime exports, declared once.

Labels are fixed and low-cardinality: service, topic, partition, reason, model_version.
Never put user ids, SKUs or other entity ids in labels. Each service process owns one
:class:`RuntimeMetrics` over its own registry, served on the metrics port.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class RuntimeMetrics:
    """The metric families of one service process."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "shopstream_events_consumed", "Input records read from Kafka", ["service", "topic"], registry=r
        )
        self.scored = Counter(
            "shopstream_events_scored", "Input events scored and acknowledged", ["service", "topic"], registry=r
        )
        self.dead_lettered = Counter(
            "shopstream_events_dead_lettered",
            "Input records sent to the DLQ",
            ["service", "topic", "reason"],
            registry=r,
        )
        self.outputs = Counter(
            "shopstream_outputs_produced", "Records produced per output topic", ["service", "topic"], registry=r
        )
        self.batch_size = Histogram(
            "shopstream_batch_size", "Events per scored micro-batch", ["service"], buckets=BATCH_BUCKETS, registry=r
        )
        self.queue_wait = Histogram(
            "shopstream_queue_wait_seconds",
            "Time from poll to the start of scoring",
            ["service"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "shopstream_inference_seconds",
            "Scorer time per micro-batch",
            ["service", "model_version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "shopstream_end_to_end_seconds",
            "Event time (record timestamp) to score acknowledged by the broker",
            ["service"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "shopstream_consumer_lag",
            "Consumer lag per input partition (librdkafka statistics)",
            ["service", "topic", "partition"],
            registry=r,
        )
        self.partition_stalled = Gauge(
            "shopstream_partition_stalled",
            "1 while an input partition has records waiting and made no progress for RUNTIME__STALL_AFTER_S",
            ["service", "topic", "partition"], registry=r,
        )
        self.partition_stalls = Counter(
            "shopstream_partition_stalls", "Input partitions that became stalled", ["service", "topic"], registry=r
        )
        self.partition_progress = Gauge(
            "shopstream_partition_last_progress_timestamp_seconds",
            "Unix time an input partition's records were last delivered and committable (or it was assigned)",
            ["service", "topic", "partition"], registry=r,
        )
        self.model_info = Gauge(
            "shopstream_model_info",
            "1 for the model version serving now",
            ["service", "model", "model_version", "sha256", "provider"],
            registry=r,
        )
        self.model_load_failures = Counter(
            "shopstream_model_load_failures",
            "Model versions refused or failed to load (checksum, spec, runtime)",
            ["service", "reason"],
            registry=r,
        )
        self.state_entries = Gauge(
            "shopstream_state_entries", "Keys held in the state store", ["service"], registry=r
        )
        self.state_bytes = Gauge(
            "shopstream_state_bytes", "Bytes of the state store's values as encoded for its changelog", ["service"],
            registry=r,
        )
        self.state_evictions = Counter(
            "shopstream_state_evictions", "Least recently used state keys evicted, by the bound (keys, bytes)",
            ["service", "reason"], registry=r,
        )
        self.rebalances = Counter(
            "shopstream_rebalances", "Partition assignments and revocations", ["service", "kind"], registry=r
        )
        self.errors = Counter(
            "shopstream_errors", "Errors by kind (scoring, kafka, produce)", ["service", "kind"], registry=r
        )
        self.ready = Gauge("shopstream_ready", "1 while the service reports ready", ["service"], registry=r)
        self.paused = Gauge(
            "shopstream_paused", "1 while consumption is paused (backpressure or failing scorer)", ["service"],
            registry=r,
        )
        self.business = BusinessMetrics(r)
        self.rollout = RolloutMetrics(r)
        self.inflight = Gauge(
            "shopstream_inflight_messages", "Produced messages awaiting acknowledgement", ["service"], registry=r
        )


class RolloutMetrics:
    """A candidate version beside the live one, and the decisions each instance follows."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.share = Gauge(
            "shopstream_rollout_share", "Share of events a candidate scores: 1 for a shadow, the key share for a "
            "canary; no series while no candidate runs", ["service", "mode", "candidate"], registry=r)
        self.events = Counter(
            "shopstream_rollout_events", "Events scored by a candidate version (shadow or canary)",
            ["service", "mode", "candidate"], registry=r)
        self.failures = Counter(
            "shopstream_rollout_failures", "Candidate passes that raised; the live version's results stood",
            ["service", "mode", "candidate"], registry=r)
        self.shadow_seconds = Histogram(
            "shopstream_shadow_inference_seconds", "Time the shadow candidate's pass added to a micro-batch",
            ["service", "candidate"], buckets=LATENCY_BUCKETS, registry=r)
        self.agreement = Gauge(
            "shopstream_shadow_agreement", "Shadow candidate against the live version over the last events: "
            "score_correlation, decision_flip_rate, top_k_overlap", ["service", "candidate", "metric"], registry=r)
        self.flips = Counter(
            "shopstream_shadow_decision_flips", "Events whose decision the shadow candidate would have changed",
            ["service", "candidate"], registry=r)
        self.decisions = Counter(
            "shopstream_model_decisions", "Model decisions this instance applied from the model-events topic",
            ["service", "decision", "forced"], registry=r)
        self.decision_sequence = Gauge(
            "shopstream_model_decision_sequence", "Sequence number of the latest model decision applied; instances "
            "that agree show the same", ["service"], registry=r)


SCORE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
PRICE_CHANGE_BUCKETS = (-0.2, -0.1, -0.05, -0.02, -0.005, 0.005, 0.02, 0.05, 0.1, 0.2)


class BusinessMetrics:
    """What a service's outputs mean for the shop, for the dashboards' business rows.

    Scorers record these in :meth:`shared.runtime.scorer.Scorer.record_business_metrics`,
    once per batch, from their own outputs.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        """For a scorer whose business series are its own (the live-quality monitor's)."""
        self.decisions = Counter(
            "shopstream_business_decisions", "Outputs per decision (fraud: approve/review/decline)",
            ["service", "decision"], registry=registry,
        )
        self.score = Histogram(
            "shopstream_business_score", "Model scores (ad pCTR, fraud probability)", ["service"],
            buckets=SCORE_BUCKETS, registry=registry,
        )
        self.price_change = Histogram(
            "shopstream_business_price_change_ratio", "Recommended / current price - 1", ["service"],
            buckets=PRICE_CHANGE_BUCKETS, registry=registry,
        )
        self.coverage = Gauge(
            "shopstream_business_coverage_ratio",
            "Distinct recommended items in a recent window / catalogue size", ["service"], registry=registry,
        )


def observe_many(child: Any, values: Sequence[float]) -> None:
    """``Histogram.observe`` for a whole batch: one increment per bucket instead of per value.

    A batch of scores shares one code path, so per-event Python calls into prometheus_client
    were a measurable share of the loop's time. This relies on the histogram child's bucket
    layout (``_upper_bounds``, ``_buckets``, ``_sum``), unchanged in prometheus_client for years
    and covered by a unit test that compares it with ``observe``.
    """
    if not values:
        return
    array = np.asarray(values, dtype=np.float64)
    bounds = np.asarray(child._upper_bounds, dtype=np.float64)
    counts = np.bincount(np.searchsorted(bounds, array, side="left"), minlength=len(bounds))
    for index, count in enumerate(counts[: len(bounds)]):
        if count:
            child._buckets[index].inc(int(count))
    child._sum.inc(float(array.sum()))
