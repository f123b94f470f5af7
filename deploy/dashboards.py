"""Grafana dashboards for shopstream, as data: one overview and one per service.

The JSON files in ``deploy/grafana/dashboards/`` are generated from this module by
``python deploy/generate.py``; a unit test fails when they drift. Every query uses only the
metric families of ``shared/runtime/metrics.py``, the business families listed in
:data:`BUSINESS_METRICS` and the live-quality monitor's (``services/monitor/metrics.py``; their
``service`` label is the monitored service), filtered by the ``$service`` variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

SERVICES = ("recommendation", "ad_ctr", "pricing", "fraud", "support")
STATEFUL = frozenset({"recommendation", "pricing", "fraud", "support"})
MONITORED = frozenset({"recommendation", "ad_ctr", "pricing", "fraud"})
"""Services the live-quality monitor measures (the shop publishes their outcomes); the others'
dashboards have no Live quality row."""
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'service=~"$service"'
RATE = "$__rate_interval"

BUSINESS_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    # name as declared: (type, labels)
    "shopstream_business_decisions": ("counter", ("service", "decision")),  # fraud approve/review/decline
    "shopstream_business_score": ("histogram", ("service",)),  # pCTR per ad candidate; fraud probability
    "shopstream_business_price_change_ratio": ("histogram", ("service",)),  # recommended / current - 1
    "shopstream_business_coverage_ratio": ("gauge", ("service",)),  # distinct top-K items / catalogue
    "shopstream_business_support_routed": ("counter", ("service", "queue")),  # support messages per queue
    "shopstream_business_support_escalations": ("counter", ("service", "reason")),  # escalated, per reason
}
"""Families a scorer registers for the business panels (proposed; not in the runtime's set)."""


@dataclass(frozen=True)
class Panel:
    """One panel: a title, its queries as ``(expr, legend)`` pairs and how to draw them."""

    title: str
    queries: tuple[tuple[str, str], ...]
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""
    width: int = 12
    instant: bool = False
    fmt: str = "time_series"
    options: Json = field(default_factory=dict)
    transformations: tuple[Json, ...] | None = None
    """Grafana transformations; ``None``: the default of the panel's kind."""


def quantiles(metric: str, by: str, unit: str, title: str, description: str) -> Panel:
    """p50 and p99 of a histogram, grouped by ``by``."""
    def q(p: str) -> str:
        return f"histogram_quantile({p}, sum by ({by}, le) (rate({metric}_bucket{{{SEL}}}[{RATE}])))"
    legend = " ".join("{{" + label.strip() + "}}" for label in by.split(","))
    return Panel(title, ((q("0.5"), f"{legend} p50"), (q("0.99"), f"{legend} p99")), unit, description=description)


def zero_fill(expr: str) -> str:
    """``expr``, or 0 for every running service that has no such series yet (shows 0, not "No data")."""
    return f"{expr} or on (service) sum by (service) (shopstream_ready{{{SEL}}}) * 0"


def flow_panels() -> list[Panel]:
    consumed = f"sum by (service) (rate(shopstream_events_consumed_total{{{SEL}}}[{RATE}]))"
    dead = f"sum by (service) (rate(shopstream_events_dead_lettered_total{{{SEL}}}[{RATE}]))"
    return [
        Panel("Throughput", (
            (consumed, "{{service}} consumed"),
            (f"sum by (service) (rate(shopstream_events_scored_total{{{SEL}}}[{RATE}]))", "{{service}} scored"),
        ), "ops", description="Input records read and events scored (acknowledged) per second."),
        Panel("Outputs produced by topic", (
            (f"sum by (service, topic) (rate(shopstream_outputs_produced_total{{{SEL}}}[{RATE}]))", "{{topic}}"),
        ), "ops", description="Records published per output topic per second."),
        Panel("DLQ rate by reason", (
            (f"sum by (service, reason) (rate(shopstream_events_dead_lettered_total{{{SEL}}}[{RATE}]))",
             "{{service}} {{reason}}"),
        ), "ops", description="Records sent to <input>.dlq per second, by the reason in their headers."),
        Panel("DLQ share of consumed", (
            (f"({zero_fill(dead)}) / {consumed}", "{{service}}"),
        ), "percentunit", description="Dead-lettered / consumed. The alert fires above 1% for 5 minutes."),
    ]


def latency_panels() -> list[Panel]:
    batch_mean = (f"sum by (service) (rate(shopstream_batch_size_sum{{{SEL}}}[{RATE}]))"
                  f" / sum by (service) (rate(shopstream_batch_size_count{{{SEL}}}[{RATE}]))")
    batch = quantiles("shopstream_batch_size", "service", "short", "Batch size",
                      "Events per scored micro-batch.")
    return [
        quantiles("shopstream_end_to_end_seconds", "service", "s", "End-to-end latency p50 / p99",
                  "Event time (record timestamp) to score acknowledged by the broker. Budget: 500 ms."),
        quantiles("shopstream_inference_seconds", "service, model_version", "s", "Inference latency p50 / p99",
                  "Scorer time per micro-batch, by model version."),
        quantiles("shopstream_queue_wait_seconds", "service", "s", "Queue wait p50 / p99",
                  "Poll to start of scoring: time spent filling the micro-batch."),
        Panel(batch.title, (*batch.queries, (batch_mean, "{{service}} mean")), "short",
              description=batch.description),
    ]


def kafka_panels() -> list[Panel]:
    return [
        Panel("Consumer lag per partition", (
            (f"sum by (service, topic, partition) (shopstream_consumer_lag{{{SEL}}})", "{{topic}} [{{partition}}]"),
        ), "short", description="Records behind the log end, per input partition (librdkafka statistics)."),
        Panel("Paused and in-flight", (
            (zero_fill(f"max by (service) (shopstream_paused{{{SEL}}})"), "{{service}} paused"),
            (f"sum by (service) (shopstream_inflight_messages{{{SEL}}})", "{{service}} in flight"),
        ), "short", description="Paused = backpressure or a failing scorer; in flight = produced, not yet acked."),
        Panel("Rebalances since start", (
            (f"sum by (service, kind) (shopstream_rebalances_total{{{SEL}}})", "{{service}} {{kind}}"),
        ), "short", description="Partition assignments, revocations and losses; a step is a rebalance."),
        Panel("Errors by kind", (
            (zero_fill(f"sum by (service, kind) (rate(shopstream_errors_total{{{SEL}}}[{RATE}]))"),
             "{{service}} {{kind}}"),
        ), "ops", description="Scoring, Kafka, commit and produce errors per second (0 when none yet)."),
    ]


def model_panels(stateful: bool) -> list[Panel]:
    info_labels = "service, instance, model, model_version, sha256, provider"
    panels = [
        Panel("Model version and provider", (
            (f"max by ({info_labels}) (shopstream_model_info{{{SEL}}}) == 1", ""),
        ), kind="table", instant=True, fmt="table", options={"showHeader": True},
            description="The model version each replica serves now, and the ONNX Runtime provider it runs on."),
        Panel("Ready replicas", (
            (f"sum by (service) (shopstream_ready{{{SEL}}})", "{{service}} ready"),
            (f'sum by (service) (up{{job="shopstream", {SEL}}})', "{{service}} scraped"),
        ), kind="stat", width=6, description="Replicas whose /readyz answers 200, and replicas scraped."),
        Panel("Model load failures (last hour)", (
            (zero_fill(f"sum by (service, reason) (increase(shopstream_model_load_failures_total{{{SEL}}}[1h]))"),
             "{{service}} {{reason}}"),
        ), kind="stat", width=6, description="Model versions refused (checksum, spec) or failed to load."),
    ]
    panels.append(Panel("Stalled partitions", (
        (zero_fill(f"sum by (service) (shopstream_partition_stalled{{{SEL}}})"), "{{service}} stalled"),
        (f"max by (service, partition) (time() - shopstream_partition_last_progress_timestamp_seconds{{{SEL}}})",
         "{{service}}[{{partition}}] s since progress"),
    ), "short", description="Input partitions with records waiting and no progress for RUNTIME__STALL_AFTER_S "
                            "(not ready; alert ShopstreamPartitionStalled), and each partition's seconds since its "
                            "records were last delivered."))
    if stateful:
        panels.append(Panel("State store size", (
            (f"sum by (service) (shopstream_state_entries{{{SEL}}})", "{{service}}"),
        ), "short", description="Keys held in the changelog-backed state store, all replicas."))
        panels.append(Panel("State store bytes and evictions", (
            (f"sum by (service) (shopstream_state_bytes{{{SEL}}})", "{{service}} bytes"),
            (zero_fill(f"sum by (service, reason) (rate(shopstream_state_evictions_total{{{SEL}}}[{RATE}]))"),
             "{{service}} evicted/s ({{reason}} bound)"),
        ), "short", description="Bytes of the state's values as encoded for the changelog, and least recently used "
                                "keys evicted per second by the key or byte bound (RUNTIME__MAX_STATE_*)."))
    return panels


def distribution(metric: str, title: str, description: str) -> Panel:
    """How observations of a histogram fall into its buckets over the dashboard's time range."""
    expr = f"sum by (le) (increase({metric}_bucket{{{SEL}}}[$__range]))"
    return Panel(title, ((expr, "{{le}}"),), kind="bargauge", instant=True, fmt="heatmap",
                 description=description, options={"displayMode": "gradient", "orientation": "vertical"})


def business_panels(service: str) -> list[Panel]:
    if service == "fraud":
        return [
            Panel("Decision mix", (
                (f"sum by (decision) (rate(shopstream_business_decisions_total{{{SEL}}}[{RATE}]))", "{{decision}}"),
            ), "ops", description="Approve / review / decline decisions per second."),
            distribution("shopstream_business_score", "Fraud probability distribution",
                         "Scores in the time range, by bucket upper bound."),
        ]
    if service == "support":
        return support_panels()
    if service == "pricing":
        return [distribution("shopstream_business_price_change_ratio", "Price change distribution",
                             "Recommended / current price - 1, by bucket upper bound.")]
    if service == "ad_ctr":
        mean = (f"sum(rate(shopstream_business_score_sum{{{SEL}}}[{RATE}]))"
                f" / sum(rate(shopstream_business_score_count{{{SEL}}}[{RATE}]))")
        return [
            distribution("shopstream_business_score", "pCTR distribution",
                         "Predicted click-through rate per candidate ad, by bucket upper bound."),
            Panel("Mean pCTR", ((mean, "mean pCTR"),), "percentunit",
                  description="Mean predicted CTR over all scored candidates."),
        ]
    return [Panel("Top-K catalogue coverage", (
        (f"max by (service, instance) (shopstream_business_coverage_ratio{{{SEL}}})", "{{instance}}"),
    ), "percentunit", description="Distinct items in the top-K lists of the recent window / catalogue size, "
                                  "per replica (each replica sees its own partitions' users).")]


def support_panels() -> list[Panel]:
    """Where the messages go, how many a person has to take now and why, and how sure the model is."""
    decisions = f"sum by (service) (rate(shopstream_business_decisions_total{{{SEL}}}[{RATE}]))"
    escalated = f'sum by (service) (rate(shopstream_business_decisions_total{{{SEL}, decision="escalate"}}[{RATE}]))'
    return [
        Panel("Messages per queue", (
            (f"sum by (queue) (rate(shopstream_business_support_routed_total{{{SEL}}}[{RATE}]))", "{{queue}}"),
        ), "ops", description="Messages routed to each queue per second (the intent → queue map in settings "
                              "or on the config topic)."),
        Panel("Escalation rate", ((f"{escalated} / {decisions}", "escalated"),), "percentunit", width=6,
              description="Share of messages escalated to a person: the model is unsure, or the customer wrote "
                          "about the same problem repeatedly. Alert: ShopstreamSupportEscalationRateHigh."),
        Panel("Escalations by reason", (
            (f"sum by (reason) (rate(shopstream_business_support_escalations_total{{{SEL}}}[{RATE}]))",
             "{{reason}}"),
        ), "ops", width=6, description="low_confidence: top probability below the threshold; repeated_problem: "
                                       "the same problem again within the window (a message may have both)."),
        distribution("shopstream_business_score", "Top intent probability distribution",
                     "The most probable intent's probability per message, by bucket upper bound."),
    ]


def live_panels() -> list[Panel]:
    """Quality measured on joined outcomes (the monitor), beside the baseline on the same events."""
    by = "service, model_version, metric"
    live = f"avg by ({by}) (shopstream_live_quality{{{SEL}}})"
    base = f"avg by ({by}) (shopstream_live_quality_baseline{{{SEL}}})"
    monitored = f"sum by (service) (shopstream_live_window{{{SEL}}}) * 0"
    table = (
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True},
                                       "renameByName": {"Value #A": "live", "Value #B": "baseline"}}},
    )
    return [
        Panel("Live quality vs baseline", (
            (live, "{{service}} {{model_version}} {{metric}}"),
            (base, "{{service}} {{model_version}} {{metric}} baseline"),
        ), description="Each metric over the monitor's window of the last joined outcomes, and the simple "
                       "baseline (base rate, popularity, last price) on the same events. Alerts: "
                       "ShopstreamLiveQualityBelowBaseline, ShopstreamLiveQualityDrop."),
        Panel("Live quality now", ((live, ""), (base, "")), kind="table", instant=True, fmt="table",
              options={"showHeader": True}, transformations=table,
              description="The latest value of each metric beside its baseline, per model version."),
        Panel("Outcomes joined per second", (
            (f"sum by (service, model_version) (rate(shopstream_live_outcomes_total{{{SEL}}}[{RATE}]))",
             "{{service}} {{model_version}}"),
        ), "ops", width=6, description="Predictions matched with their outcome. Alert: ShopstreamNoOutcomes."),
        Panel("Unmatched per second by reason", (
            (f"sum by (service, reason) (rate(shopstream_live_unmatched_total{{{SEL}}}[{RATE}]))"
             f" or on (service) {monitored}", "{{service}} {{reason}}"),
        ), "ops", width=6, description="Predictions whose outcome did not come within the wait, and outcomes "
                                       "whose prediction was not (or no longer) held (0 when none yet)."),
        Panel("Join delay p95", (
            (f"histogram_quantile(0.95, sum by (service, le) "
             f"(rate(shopstream_live_join_delay_seconds_bucket{{{SEL}}}[{RATE}])))", "{{service}} p95"),
        ), "s", width=6, description="Outcome event time minus prediction event time, 95th percentile."),
        Panel("Window size", (
            (f"sum by (service, model_version) (shopstream_live_window{{{SEL}}})", "{{service}} {{model_version}}"),
        ), "short", width=6, description="Joined pairs the live metrics are computed over; the quality alerts "
                                         "wait for 200."),
    ]


def rollout_panels() -> list[Panel]:
    """A candidate version beside the live one (shadow or canary), and the decisions each replica applied."""
    by = "service, mode, candidate"
    return [
        Panel("Candidate and its share", (
            (zero_fill(f"max by ({by}) (shopstream_rollout_share{{{SEL}}})"), "{{service}} {{mode}} {{candidate}}"),
        ), "percentunit", width=6, description="1 for a shadow (every event scored twice), the key share for a "
                                               "canary; 0 while no candidate runs (shopstream models rollout)."),
        Panel("Candidate events and failures per second", (
            (f"sum by ({by}) (rate(shopstream_rollout_events_total{{{SEL}}}[{RATE}]))", "{{candidate}} {{mode}}"),
            (zero_fill(f"sum by (service) (rate(shopstream_rollout_failures_total{{{SEL}}}[{RATE}]))"),
             "{{service}} candidate failures"),
        ), "ops", width=6, description="Events the candidate scored, and its passes that raised (the live "
                                       "version's results stood)."),
        Panel("Shadow agreement with the live version", (
            (f"avg by (service, candidate, metric) (shopstream_shadow_agreement{{{SEL}}})",
             "{{candidate}} {{metric}}"),
        ), "short", description="Over the last 5,000 events: score correlation, share of decisions the candidate "
                                "would flip, overlap of the top-K lists."),
        quantiles("shopstream_shadow_inference_seconds", "service", "s", "Time a shadow adds to a batch",
                  "The candidate's pass over each micro-batch, before the live version scores it."),
        Panel("Model decisions (last hour)", (
            (zero_fill(f"sum by (service, decision, forced) "
                       f"(increase(shopstream_model_decisions_total{{{SEL}}}[1h]))"),
             "{{service}} {{decision}} forced={{forced}}"),
        ), kind="stat", width=6, description="Promotions, refusals and rollbacks the replicas applied from the "
                                             "shopstream.model-events topic (one per replica per decision)."),
        Panel("Replicas on the latest decision", (
            (f"min by (service) (shopstream_model_decision_sequence{{{SEL}}})", "{{service}} oldest"),
            (f"max by (service) (shopstream_model_decision_sequence{{{SEL}}})", "{{service}} newest"),
        ), kind="stat", width=6, description="The decision sequence the replicas applied: oldest = newest when "
                                             "every replica follows the same decision."),
    ]


def sections(service: str | None) -> list[tuple[str, list[Panel]]]:
    """Rows of panels; ``None`` is the overview (all services, no business row)."""
    rows = [
        ("Flow", flow_panels()),
        ("Latency", latency_panels()),
        ("Kafka", kafka_panels()),
        ("Model and state", model_panels(service is None or service in STATEFUL)),
    ]
    if service is not None:
        rows.append(("Business", business_panels(service)))
    if service is None or service in MONITORED:
        rows.append(("Live quality", live_panels()))
    rows.append(("Rollout", rollout_panels()))
    return rows
