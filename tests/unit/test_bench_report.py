"""The benchmark report: goal ratios and tables a reader compares services by."""

from __future__ import annotations

import math

from tools.bench.contestants import RunResult
from tools.bench.latency import LatencyResult
from tools.bench.measure import ProcessUsage, median_spread
from tools.bench.model_limit import BatchPoint, ModelLimit
from tools.bench.report import fmt_ratio, format_service, format_suite, ratios
from tools.bench.service import ServiceBenchConfig, ServiceReport
from tools.bench.suites import SuiteReport


def _run(name: str, rate: float, events: int = 1000, cpu: float = 2.0) -> RunResult:
    return RunResult(name, events, rate, ProcessUsage(cpu, 150.0))


def _model(rows_per_s: list[float], rows_per_event: float = 1.0) -> ModelLimit:
    points = [BatchPoint(1, [100.0, 110.0, 90.0]), BatchPoint(256, rows_per_s)]
    return ModelLimit("fraud", "fraud", "v0001", "CPUExecutionProvider", "fp32", rows_per_event, points)


def _report() -> ServiceReport:
    report = ServiceReport("fraud", ServiceBenchConfig(repeats=3), model=_model([50_000.0, 40_000.0, 45_000.0]))
    report.runs = {"bare": [_run("bare", r) for r in (10_000, 11_000, 9_000)],
                   "shopstream": [_run("shopstream", r) for r in (8_000, 8_200, 7_900)],
                   "naive": [_run("naive", r) for r in (200, 210, 190)],
                   "peer": [_run("peer", r) for r in (300, 320, 280)]}
    report.latency = [LatencyResult(0.25, 2000, 1990, 15_000, 12, 30, 55)]
    report.load = [3.2, 3.4]
    return report


def test_ratios_divide_shopstream_by_the_tighter_limit_naive_and_peer() -> None:
    by_name = {r.name: r for r in ratios(_report())}
    limit = by_name["shopstream / min(model limit, I/O limit)"]
    assert limit.value == 8_000 / 10_000  # the bare loop (10k) is tighter than the model (45k)
    assert limit.met is True
    assert by_name["shopstream / naive"].value == 8_000 / 200
    assert by_name["shopstream / peer (Quix Streams)"].value == 8_000 / 300


def test_model_limit_counts_events_not_rows_when_an_event_has_several_rows() -> None:
    model = _model([15_000.0, 15_000.0, 15_000.0], rows_per_event=15)
    assert model.best.batch == 256
    assert model.events_per_s == 1_000


def test_missing_contestant_is_not_measured_rather_than_a_pass() -> None:
    report = _report()
    del report.runs["peer"]
    report.skipped["peer"] = "no interpreter with quixstreams"
    peer = next(r for r in ratios(report) if "peer" in r.name)
    assert math.isnan(peer.value) and peer.met is None
    text = format_service(report)
    assert "not measured" in text and "no interpreter with quixstreams" in text


def test_service_table_shows_medians_spread_cpu_and_latency() -> None:
    text = format_service(_report())
    assert "| shopstream | 8,000 ± 150 | 2.000 | 150 | 3 |" in text
    assert "model limit (ORT, batch 256)" in text
    assert "| 25% | 2,000 | 1,990 | 12 | 30 | 55 |" in text
    assert "load average 3.2 → 3.4" in text
    assert "BELOW GOAL" not in text


def test_below_goal_is_flagged() -> None:
    report = _report()
    report.runs["shopstream"] = [_run("shopstream", 1_000)]
    assert "BELOW GOAL" in format_service(report)


def test_suite_table_relates_each_run_to_the_first() -> None:
    suite = SuiteReport("scaling", "fraud", 20_000, 8,
                        {"1 instance": [_run("x1", 1000)], "2 instances": [_run("x2", 1500)]}, [2.0, 2.5])
    text = format_suite(suite)
    assert "- 2 instances / 1 instance = 1.50" in text


def test_median_spread_and_ratio_formatting() -> None:
    assert median_spread([1.0, 5.0, 3.0]) == (3.0, 2.0)
    assert fmt_ratio(0.8123) == "0.81"
    assert fmt_ratio(37.25) == "37.2"
    assert fmt_ratio(float("nan")) == "n/a"


def test_cpu_cost_per_event_is_compared_to_shopstream() -> None:
    report = _report()
    report.runs["peer"] = [_run("peer", 300, cpu=6.0)]
    assert "- CPU per event, peer / shopstream = 3.00" in format_service(report)
