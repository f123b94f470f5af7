"""The benchmark report: goal ratios and tables a reader compares services by."""

from __future__ import annotations

import math

from tools.bench.contestants import RunResult
from tools.bench.latency import LatencyResult
from tools.bench.measure import ProcessUsage, median_spread
from tools.bench.model_limit import BatchPoint, ModelLimit
from tools.bench.report import (
    fmt_ratio,
    format_model,
    format_runtime,
    format_service,
    format_suite,
    format_summary,
    ratios,
)
from tools.bench.runtime import RuntimeBenchReport
from tools.bench.service import ServiceBenchConfig, ServiceReport
from tools.bench.suites import SuiteReport


def _run(name: str, rate: float, events: int = 1000, cpu: float = 2.0) -> RunResult:
    return RunResult(name, events, rate, ProcessUsage(cpu, 150.0))


def _model(rows_per_s: list[float], rows_per_event: float = 1.0, threads: int = 1) -> ModelLimit:
    points = [BatchPoint(1, [100.0, 110.0, 90.0]), BatchPoint(256, rows_per_s), BatchPoint(512, [10.0])]
    return ModelLimit("fraud", "fraud", "v0001", "CPUExecutionProvider", "fp32", rows_per_event, points, threads,
                      all_cores=threads == 2)


def _report() -> ServiceReport:
    report = ServiceReport("fraud", ServiceBenchConfig(repeats=3),
                           models=[_model([50_000.0, 40_000.0, 45_000.0]),
                                   _model([80_000.0, 90_000.0, 85_000.0], threads=2)])
    report.runs = {"io-limit": [_run("io-limit", r) for r in (10_000, 11_000, 9_000)],
                   "plain-batched": [_run("plain-batched", r) for r in (8_500, 8_600, 8_400)],
                   "shopstream": [_run("shopstream", r) for r in (8_000, 8_200, 7_900)],
                   "naive-sync": [_run("naive-sync", r) for r in (200, 210, 190)],
                   "peer": [_run("peer", r) for r in (300, 320, 280)]}
    report.latency = [LatencyResult(0.25, 2000, 1990, 15_000, 12, 30, 55),
                      LatencyResult(0.25, 2000, 1995, 15_000, 6, 11, 15, contestant="io-limit")]
    report.load = [3.2, 3.4]
    return report


def test_ratios_divide_shopstream_by_the_tighter_limit_the_plain_loop_naive_sync_and_peer() -> None:
    by_name = {r.name: r for r in ratios(_report())}
    limit = by_name["shopstream / min(model limit, I/O limit)"]
    assert limit.value == 8_000 / 10_000  # the I/O limit (10k) is tighter than the model (85k at 2 threads)
    assert limit.met is True
    plain = by_name["shopstream / batched plain loop"]
    assert plain.value == 8_000 / 8_500 and plain.goal == 0.9 and plain.met is True
    assert by_name["shopstream / naive-sync"].value == 8_000 / 200
    assert by_name["shopstream / peer (Quix Streams)"].value == 8_000 / 300


def test_the_model_limit_is_the_best_thread_setting_when_it_is_the_tighter_limit() -> None:
    report = _report()
    report.runs["io-limit"] = [_run("io-limit", 1_000_000)]
    limit = next(r for r in ratios(report) if r.name.startswith("shopstream / min"))
    assert limit.value == 8_000 / 85_000  # the all-cores sweep's best point, not the 1-thread one (45k)


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


def test_a_missing_limit_is_not_replaced_by_the_other_one() -> None:
    report = _report()
    report.models = []
    limit = next(r for r in ratios(report) if r.name.startswith("shopstream / min"))
    assert math.isnan(limit.value) and limit.met is None


def test_service_table_shows_every_contestant_in_order_with_medians_spread_cpu_and_latency() -> None:
    text = format_service(_report())
    rows = [line.split(" | ")[0].removeprefix("| ") for line in text.splitlines() if line.startswith("| ")]
    assert rows[1:8] == ["model limit, 1 thread, batch 256", "model limit, 2 threads (all cores), batch 256",
                         "I/O limit", "batched plain loop", "shopstream", "naive-sync", "peer (Quix Streams)"]
    assert "| shopstream | 8,000 ± 150 | 2.000 | 150 | 3 |" in text
    assert "| model limit, 1 thread, batch 256 | 45,000 ± 5,000 | | | 3 |" in text
    assert "| shopstream | 25% | 2,000 | 1,990 | 12 | 30 | 55 |" in text
    assert "| I/O limit | 25% | 2,000 | 1,995 | 6 | 11 | 15 |" in text, "the floor beside it, at the same rate"
    assert "load average 3.2 → 3.4" in text
    assert "- shopstream / batched plain loop = **0.94** (goal ≥ 0.9; goal met)" in text
    assert "BELOW GOAL" not in text


def test_below_goal_is_flagged() -> None:
    report = _report()
    report.runs["shopstream"] = [_run("shopstream", 1_000)]
    assert "BELOW GOAL" in format_service(report)


def test_summary_puts_the_services_side_by_side() -> None:
    other = _report()
    other.service = "pricing"
    other.runs["shopstream"] = [_run("shopstream", 4_000)]
    text = format_summary([_report(), other]).splitlines()
    assert len(text) == 4
    assert text[2] == ("| fraud | 45,000 (256) | 85,000 (256) | 10,000 | 8,500 | 8,000 | 200 | 300 | 0.80 ✓ | 0.94 ✓ |")
    assert text[3].startswith("| pricing |") and text[3].endswith("| 0.40 ✗ | 0.47 ✗ |")


def test_runtime_report_relates_echo_to_the_io_limit_and_the_loops() -> None:
    report = RuntimeBenchReport(4, 100_000, {"io-limit": [_run("io-limit", 50_000)],
                                             "plain-batched": [_run("plain-batched", 30_000)],
                                             "shopstream": [_run("shopstream", 20_000)]}, load=[1.0, 2.0])
    text = format_runtime(report)
    assert "- shopstream / I/O limit = **0.40** (goal ≥ 0.8; BELOW GOAL)" in text
    assert "- shopstream / batched plain loop = **0.67**" in text
    assert "| naive-sync | n/a | | | |" in text  # it did not run: shown, not a crash
    assert "shopstream / naive-sync = **n/a** (goal ≥ 10; not measured)" in text


def test_model_table_lists_every_swept_point_and_where_the_sweep_stopped() -> None:
    text = format_model(_model([50_000.0, 40_000.0, 45_000.0], rows_per_event=2.0))
    assert "1 thread, 2 rows per event" in text
    assert "| 256 | 45,000 ± 5,000 | 22,500 |" in text
    assert "best: batch 256, 22,500 events/s; the sweep stopped at batch 512" in text


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
    report.runs["plain-batched"] = [_run("plain-batched", 8_500, cpu=1.0)]
    text = format_service(report)
    assert "- CPU per event, peer (Quix Streams) / shopstream = 3.00" in text
    assert "- CPU per event, batched plain loop / shopstream = 0.50" in text
