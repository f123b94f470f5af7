"""Markdown tables and goal ratios for benchmark reports (pure functions, unit-tested)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tools.bench.contestants import RunResult
from tools.bench.measure import median_spread
from tools.bench.model_limit import ModelLimit
from tools.bench.runtime import RuntimeBenchReport
from tools.bench.service import CONTESTANTS, SERVED_VARIANT, ServiceReport
from tools.bench.shadow import PLAIN, SHADOW, TWINS, ShadowReport, TwinRun
from tools.bench.suites import SuiteReport
from tools.bench.torch_eager import PROVIDER as EAGER

GOALS = {"limit": 0.8, "plain": 0.9, "naive": 10.0, "peer": 2.0}
LABELS = {"io-limit": "I/O limit", "plain-batched": "batched plain loop", "shopstream": "shopstream",
          "naive-sync": "naive-sync", "peer": "peer (Quix Streams)"}
"""How each run name reads in a report."""
LIMIT_RATIO = "shopstream / min(model limit, I/O limit)"
PLAIN_RATIO = "shopstream / batched plain loop"


@dataclass(frozen=True)
class Ratio:
    name: str
    value: float
    goal: float | None
    """``None``: reported without a goal."""

    @property
    def met(self) -> bool | None:
        return None if math.isnan(self.value) or self.goal is None else self.value >= self.goal

    def line(self) -> str:
        if self.goal is None:
            return f"- {self.name} = **{fmt_ratio(self.value)}**"
        verdict = {None: "not measured", True: "goal met", False: "BELOW GOAL"}[self.met]
        return f"- {self.name} = **{fmt_ratio(self.value)}** (goal ≥ {self.goal:g}; {verdict})"

    def cell(self) -> str:
        mark = {None: "", True: " ✓", False: " ✗"}[self.met]
        return f"{fmt_ratio(self.value)}{mark}"


def fmt_ratio(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def fmt_rate(median: float, spread: float) -> str:
    if math.isnan(median):
        return "n/a"
    return f"{median:,.0f} ± {spread:,.0f}"


def fmt_events(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.0f}"


def tighter(a: float, b: float) -> float:
    """The smaller of two limits; NaN if either was not measured (a missing limit is no limit)."""
    return float("nan") if math.isnan(a) or math.isnan(b) else min(a, b)


def ratio(numerator: float, denominator: float) -> float:
    if math.isnan(numerator) or math.isnan(denominator) or denominator <= 0:
        return float("nan")
    return numerator / denominator


def ratios(report: ServiceReport) -> list[Ratio]:
    """shopstream against the tighter limit (the best model limit over thread settings, or the
    I/O limit), the batched plain loop, naive-sync and the peer."""
    shop = report.median("shopstream")
    return [
        Ratio(LIMIT_RATIO, ratio(shop, tighter(report.model_limit, report.median("io-limit"))), GOALS["limit"]),
        Ratio(PLAIN_RATIO, ratio(shop, report.median("plain-batched")), GOALS["plain"]),
        Ratio("shopstream / naive-sync", ratio(shop, report.median("naive-sync")), GOALS["naive"]),
        Ratio("shopstream / peer (Quix Streams)", ratio(shop, report.median("peer")), GOALS["peer"]),
        *([Ratio("shopstream / torch eager per message", ratio(shop, report.eager_limit), None)]
          if report.eager else []),
    ]


def cpu_per_event(runs: Sequence[RunResult]) -> float:
    return median_spread([r.cpu_s_per_1000 for r in runs])[0] if runs else float("nan")


def cpu_lines(runs: dict[str, list[RunResult]]) -> list[str]:
    """CPU cost per event relative to shopstream: robust where load decides throughput."""
    shop = cpu_per_event(runs.get("shopstream", []))
    out = []
    for name in CONTESTANTS:
        other = cpu_per_event(runs.get(name, []))
        if name != "shopstream" and not math.isnan(ratio(other, shop)):
            out.append(f"- CPU per event, {LABELS[name]} / shopstream = {fmt_ratio(ratio(other, shop))}")
    return out


def run_row(name: str, runs: Sequence[RunResult]) -> str:
    if not runs:
        return f"| {name} | n/a | | | |"
    rate = fmt_rate(*median_spread([r.throughput for r in runs]))
    cpu = median_spread([r.cpu_s_per_1000 for r in runs])[0]
    rss = median_spread([r.usage.peak_rss_mb for r in runs])[0]
    return f"| {name} | {rate} | {cpu:.3f} | {rss:.0f} | {len(runs)} |"


def limit_label(model: ModelLimit) -> str:
    """``model limit, 1 thread, batch 64``; the variant when not fp32; torch eager per message as such."""
    if model.provider == EAGER:
        return f"torch eager per message, {model.threads_label}"
    variant = "" if model.variant == SERVED_VARIANT else f" {model.variant}"
    return f"model limit{variant}, {model.threads_label}, batch {model.best.batch:,}"


def model_row(model: ModelLimit) -> str:
    return (f"| {limit_label(model)} | {fmt_rate(model.events_per_s, model.events_spread)} | | "
            f"| {len(model.best.rows_per_s)} |")


RUN_TABLE = ["| contestant | events/s (median ± half-range) | CPU s / 1000 events | peak RSS MB | runs |",
             "|---|---|---|---|---|"]


def format_service(report: ServiceReport) -> str:
    c = report.config
    lines = [f"### {report.service}", "",
             f"{c.events:,} events ({c.naive_events:,} naive-sync, {c.peer_events:,} peer), {c.partitions} "
             f"partitions, {c.repeats} repeats; load average {' → '.join(f'{x:.1f}' for x in report.load)}", "",
             *RUN_TABLE]
    lines += [model_row(m) for m in [*report.models, *report.eager]]
    lines += [run_row(LABELS[name], report.runs.get(name, [])) for name in CONTESTANTS]
    lines.append("")
    lines += [r.line() for r in ratios(report)]
    lines += cpu_lines(report.runs)
    lines += [f"- {LABELS.get(name, name)} not measured: {why}" for name, why in report.skipped.items()]
    if report.latency:
        lines += ["", "| contestant | load | target events/s | sent events/s | p50 ms | p95 ms | p99 ms |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {LABELS.get(r.contestant, r.contestant)} | {r.fraction:.0%} | {r.rate:,.0f} | {r.achieved:,.0f} "
                  f"| {r.p50_ms:.0f} | {r.p95_ms:.0f} | {r.p99_ms:.0f} |" for r in report.latency]
    return "\n".join(lines)


def _limit_cell(model: ModelLimit | None) -> str:
    return f"{model.events_per_s:,.0f} ({model.best.batch:,})" if model else "n/a"


def format_summary(reports: Sequence[ServiceReport]) -> str:
    """One row per service: every contestant's median events/s and the two goal ratios."""
    lines = ["| service | model limit, 1 thread (batch) | model limit, all cores (batch) | I/O limit "
             "| batched plain loop | shopstream | naive-sync | peer | shopstream / min(model limit, I/O limit) "
             "| shopstream / batched plain loop |", "|---|---|---|---|---|---|---|---|---|---|"]
    for report in reports:
        one = next((m for m in report.served_models if m.threads == 1), None)
        every = next((m for m in report.served_models if m.all_cores), None)
        rates = [fmt_events(report.median(name)) for name in CONTESTANTS]
        by_name = {r.name: r for r in ratios(report)}
        lines.append(f"| {report.service} | {_limit_cell(one)} | {_limit_cell(every)} | {' | '.join(rates)} "
                     f"| {by_name[LIMIT_RATIO].cell()} | {by_name[PLAIN_RATIO].cell()} |")
    return "\n".join(lines)


def format_runtime(report: RuntimeBenchReport) -> str:
    """The echo service against the I/O limit and the baseline loops."""
    lines = [f"runtime benchmark: echo scorer, {report.events:,} events, {report.partitions} partitions, "
             f"load average {' → '.join(f'{x:.1f}' for x in report.load)}", "", *RUN_TABLE]
    lines += [run_row(LABELS[name], report.runs.get(name, [])) for name in CONTESTANTS if name != "peer"]
    shop = report.median("shopstream")
    lines += ["", Ratio("shopstream / I/O limit", ratio(shop, report.median("io-limit")), GOALS["limit"]).line(),
              Ratio(PLAIN_RATIO, ratio(shop, report.median("plain-batched")), None).line(),
              Ratio("shopstream / naive-sync", ratio(shop, report.median("naive-sync")), GOALS["naive"]).line()]
    lines += cpu_lines(report.runs)
    for lat in report.latency:
        lines.append(f"- latency of {LABELS.get(lat.contestant, lat.contestant)} at {lat.rate:,.0f} events/s "
                     f"({lat.fraction:.0%} of shopstream's saturation): "
                     f"p50 {lat.p50_ms:.0f} ms, p95 {lat.p95_ms:.0f} ms, p99 {lat.p99_ms:.0f} ms")
    return "\n".join(lines)


def format_model(model: ModelLimit) -> str:
    lines = [f"model limit {model.service}: {model.model} {model.version} {model.variant} on {model.provider}, "
             f"{model.threads_label}, {model.rows_per_event:g} rows per event",
             "| batch | rows/s (median ± half-range) | events/s |", "|---|---|---|"]
    lines += [f"| {p.batch:,} | {fmt_rate(p.median, p.spread)} | {p.median / model.rows_per_event:,.0f} |"
              for p in model.points]
    lines.append(f"best: batch {model.best.batch:,}, {model.events_per_s:,.0f} events/s; the sweep stopped at "
                 f"batch {model.points[-1].batch:,}")
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


def _mb(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.0f}"


def twin_row(name: str, runs: Sequence[TwinRun]) -> str:
    if not runs:
        return f"| {name} | n/a | | | | | |"
    rate = fmt_rate(*median_spread([r.throughput for r in runs]))
    cpu = median_spread([r.cpu_s_per_1000 for r in runs])[0]
    loaded = median_spread([r.loaded.rss_mb for r in runs])[0]
    after = median_spread([r.after.rss_mb for r in runs])[0]
    peak = median_spread([r.after.peak_rss_mb for r in runs])[0]
    return f"| {name} | {rate} | {cpu:.3f} | {_mb(loaded)} | {_mb(after)} | {_mb(peak)} | {len(runs)} |"


def _us(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.1f}"


def _signed_mb(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+,.0f} MB"


def shadow_lines(report: ShadowReport) -> list[str]:
    """The shadow twin against the plain one: throughput ratio, memory, the candidate's coverage."""
    plain, shadow = report.median(PLAIN), report.median(SHADOW)
    lines = [Ratio(f"{SHADOW} / {PLAIN} (throughput at saturation)", ratio(shadow, plain), None).line(),
             Ratio(f"CPU per event, {SHADOW} / {PLAIN}", ratio(report.median(SHADOW, "cpu_s_per_1000"),
                                                              report.median(PLAIN, "cpu_s_per_1000")), None).line()]
    memory = [("RSS once loaded", "loaded.rss_mb"), ("RSS after the run", "after.rss_mb"),
              ("peak RSS", "after.peak_rss_mb")]
    parts = [f"{label} {_signed_mb(report.memory(SHADOW, key) - report.memory(PLAIN, key))}" for label, key in memory]
    lines.append(f"- memory of the shadow: {', '.join(parts)} (medians, shadow twin minus plain twin)")
    runs = report.runs.get(SHADOW, [])
    if runs:
        covered = ", ".join(f"{fmt_events(r.candidate_events)} of {r.events:,}" for r in runs)
        lines.append(f"- events the candidate scored, per run: {covered}")
    if any(not math.isnan(r.scorer_us) for name in TWINS for r in report.runs.get(name, [])):
        plain_us, shadow_us = report.median(PLAIN, "scorer_us"), report.median(SHADOW, "scorer_us")
        lines.append(f"- scorer time per event (the runtime's `shopstream_inference_seconds` over the events): "
                     f"{_us(plain_us)} µs plain, {_us(shadow_us)} µs with the shadow, of which the candidate's pass "
                     f"{_us(report.median(SHADOW, 'candidate_us'))} µs; micro-batches of "
                     f"{fmt_events(report.median(PLAIN, 'batch'))} and {fmt_events(report.median(SHADOW, 'batch'))} "
                     f"events on average")
    fill = median_spread([r.fill_s for name in TWINS for r in report.runs.get(name, [])])[0]
    if not math.isnan(fill):
        lines.append(f"- writing the input took {fill:.1f} s per run (median; the benchmark's producer shares the "
                     f"cores with the service, alike for both twins)")
    return lines


def format_shadow(report: ShadowReport) -> str:
    c, repo = report.config, report.repository
    what = (f"live {repo.model} {repo.live} pinned, shadow candidate {repo.candidate} (a byte-for-byte copy of "
            f"{repo.live}; model folders copied: {', '.join(repo.copied)})") if repo else "no repository"
    lines = [f"### The cost of a shadow: {report.service}", "",
             f"{c.events:,} events per run, {c.partitions} partitions, {c.repeats} repeats, each twin on a fresh "
             f"input topic filled once it is ready (and shadowing); {what}; load average "
             f"{' → '.join(f'{x:.1f}' for x in report.load)}", "",
             "| run | events/s (median ± half-range) | CPU s / 1000 events | RSS loaded MB | RSS after MB "
             "| peak RSS MB | runs |", "|---|---|---|---|---|---|---|"]
    lines += [twin_row(name, report.runs.get(name, [])) for name in TWINS]
    lines.append("")
    lines += shadow_lines(report)
    lines += [f"- {name} not measured: {why}" for name, why in report.skipped.items()]
    if report.latency:
        lines += ["", "| run | load (of shopstream's saturation) | target events/s | sent events/s | p50 ms "
                  "| p95 ms | p99 ms |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r.contestant} | {r.fraction:.0%} | {r.rate:,.0f} | {r.achieved:,.0f} | {r.p50_ms:.0f} "
                  f"| {r.p95_ms:.0f} | {r.p99_ms:.0f} |" for r in report.latency]
    return "\n".join(lines)
