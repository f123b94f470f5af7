"""The demo's live view reads live quality from the monitor's /metrics page, as the monitor writes it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from services.monitor.metrics import LiveQualityMetrics
from tools.cli.demo_view import headline, live_line
from tools.cli.promtext import LiveQuality, parse


def monitor_page() -> str:
    registry = CollectorRegistry()
    metrics = LiveQualityMetrics(registry)
    metrics.publish("ad_ctr", "v0001", {"auc": 0.712, "log_loss": 0.131, "observed_ctr": 0.03},
                    {"auc": 0.5, "log_loss": 0.142, "observed_ctr": 0.03}, window=1234)
    metrics.publish("recommendation", "v0002", {"hit_at_10": 0.31, "coverage": 0.4, "ndcg_at_10": float("nan")},
                    {"hit_at_10": 0.19}, window=800)
    metrics.outcomes.labels("ad_ctr", "v0001").inc(1234)
    return generate_latest(registry).decode()


def test_the_view_reads_each_measure_beside_its_baseline_per_service_and_version() -> None:
    live = parse(monitor_page()).live
    assert set(live) == {("ad_ctr", "v0001"), ("recommendation", "v0002")}
    ads = live[("ad_ctr", "v0001")]
    assert ads == LiveQuality(1234, {"auc": 0.712, "log_loss": 0.131, "observed_ctr": 0.03},
                              {"auc": 0.5, "log_loss": 0.142, "observed_ctr": 0.03})
    # observed_ctr measures the traffic: its "baseline" is the same number, so it is not repeated
    assert live_line("ad_ctr", "v0001", ads) == (
        "ad_ctr v0001  auc 0.712 (base 0.500)  log_loss 0.131 (base 0.142)  observed_ctr 0.030  n=1,234")
    # a measure the window cannot give yet (NaN) is not exported, so not shown
    assert live_line("recommendation", "v0002", live[("recommendation", "v0002")]) == (
        "recommendation v0002  hit_at_10 0.310 (base 0.190)  coverage 0.400  n=800")


def test_the_throughput_table_shows_the_served_versions_headline_or_a_dash() -> None:
    live = parse(monitor_page()).live
    assert headline("ad_ctr", "v0001", live) == "auc 0.712 (base 0.500) n=1,234"
    assert headline("ad_ctr", "v0002", live) == "-"  # another version is served: its outcomes are not in yet
    assert headline("fraud", "v0001", live) == "-"
