"""Markdown tables and goal ratios for benchmark reports (pure functions, unit-tested)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tools.bench.contestants import RunResult
from tools.bench.measure import median_spread
from tools.bench.model_limit import ModelLimit
from tools.bench.service import CONTESTANTS, ServiceReport
from tools.bench.suites import SuiteReport

GOALS = {"limit": 0.8, "naive": 10.0, "peer": 2.0}


@dataclass(frozen=True)
class Ratio:
    name: str
    value: float
    goal: float

    @property
    def met(self) -> bool | None:
        return None if math.isnan(self.value) else self.value >= self.goal

    def line(self) -> str:
        verdict = {None: "not measured", True: "goal met", False: "BELOW GOAL"}[self.met]
        return f"- {self.name} = **{fmt_ratio(self.value)}** (goal ≥ {self.goal:g}; {verdict})"


def fmt_ratio(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def fmt_rate(median: float, spread: float) -> str:
    if math.isnan(median):
        return "n/a"
    return f"{median:,.0f} ± {spread:,.0f}"


def ratio(numerator: float, denominator: float) -> float:
    if math.isnan(numerator) or math.isnan(denominator) or denominator <= 0:
        return float("nan")
    return numerator / denominator


def ratios(report: ServiceReport) -> list[Ratio]:
    shop = report.median("shopstream")
    model = report.model.events_per_s if report.model else float("nan")
    bare = report.median("bare")
    limit = float("nan") if math.isnan(model) or math.isnan(bare) else min(model, bare)
    return [
        Ratio("shopstream / min(model limit, I/O limit)", ratio(shop, limit), GOALS["limit"]),
        Ratio("shopstream / naive", ratio(shop, report.median("naive")), GOALS["naive"]),
        Ratio("shopstream / peer (Quix Streams)", ratio(shop, report.median("peer")), GOALS["peer"]),
    ]


def cpu_per_event(runs: Sequence[RunResult]) -> float:
    return median_spread([r.cpu_s_per_1000 for r in runs])[0] if runs else float("nan")


def cpu_lines(report: ServiceReport) -> list[str]:
    """CPU cost per event relative to shopstream: robust where load decides throughput."""
    shop = cpu_per_event(report.runs.get("shopstream", []))
    out = []
    for name in ("naive", "peer"):
        other = cpu_per_event(report.runs.get(name, []))
        if not math.isnan(ratio(other, shop)):
            out.append(f"- CPU per event, {name} / shopstream = {fmt_ratio(ratio(other, shop))}")
    return out


def run_row(name: str, runs: Sequence[RunResult]) -> str:
    if not runs:
        return f"| {name} | n/a | | | |"
    rate = fmt_rate(*median_spread([r.throughput for r in runs]))
    cpu = median_spread([r.cpu_s_per_1000 for r in runs])[0]
    rss = median_spread([r.usage.peak_rss_mb for r in runs])[0]
    return f"| {name} | {rate} | {cpu:.3f} | {rss:.0f} | {len(runs)} |"


def model_row(model: ModelLimit) -> str:
    return (f"| model limit (ORT, batch {model.best.batch}) | {fmt_rate(model.events_per_s, model.events_spread)} "
            f"| | | {len(model.best.rows_per_s)} |")


def format_service(report: ServiceReport) -> str:
    c = report.config
    lines = [f"### {report.service}", "",
             f"{c.events:,} events ({c.naive_events:,} naive, {c.peer_events:,} peer), {c.partitions} partitions, "
             f"{c.repeats} repeats; load average {' → '.join(f'{x:.1f}' for x in report.load)}", "",
             "| contestant | events/s (median ± half-range) | CPU s / 1000 events | peak RSS MB | runs |",
             "|---|---|---|---|---|"]
    if report.model:
        lines.append(model_row(report.model))
    lines += [run_row(name, report.runs.get(name, [])) for name in CONTESTANTS]
    lines.append("")
    lines += [r.line() for r in ratios(report)]
    lines += cpu_lines(report)
    lines += [f"- {name} not measured: {why}" for name, why in report.skipped.items()]
    if report.latency:
        lines += ["", "| load | target events/s | sent events/s | p50 ms | p95 ms | p99 ms |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r.fraction:.0%} | {r.rate:,.0f} | {r.achieved:,.0f} | {r.p50_ms:.0f} | {r.p95_ms:.0f} | "
                  f"{r.p99_ms:.0f} |" for r in report.latency]
    return "\n".join(lines)


def format_model(model: ModelLimit) -> str:
    lines = [f"model limit {model.service}: {model.model} {model.version} {model.variant} on {model.provider}, "
             f"{model.rows_per_event:g} rows per event",
             "| batch | rows/s (median ± half-range) |", "|---|---|"]
    lines += [f"| {p.batch} | {fmt_rate(p.median, p.spread)} |" for p in model.points]
    lines.append(f"best: batch {model.best.batch}, {model.events_per_s:,.0f} events/s")
    return "\n".join(lines)


def format_suite(report: SuiteReport) -> str:
    lines = [f"### {report.title}: {report.service}", "",
             f"{report.events:,} events, {report.partitions} partitions; load average "
             f"{' → '.join(f'{x:.1f}' for x in report.load)}", "",
             "| run | events/s (median ± half-range) | CPU s / 1000 events | peak RSS MB | runs |",
             "|---|---|---|---|---|"]
    lines += [run_row(name, runs) for name, runs in report.runs.items()]
    names = list(report.runs)
    if len(names) >= 2:
        first = report.median(names[0])[0]
        lines += [""] + [f"- {name} / {names[0]} = {fmt_ratio(ratio(report.median(name)[0], first))}"
                         for name in names[1:]]
    return "\n".join(lines)
