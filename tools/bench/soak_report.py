"""Figures, goals, a plot and the markdown of a soak run (see :mod:`tools.bench.soak`).

The goals, from the issue: RSS growth below 5 % after warm-up, p99 back to its steady value
within 30 s of each fault, no stalled partition, nothing lost. How each is judged:

- *RSS growth* of one process lifetime: the median RSS of its last minute over the median of its
  first minute after warm-up (``warmup_s`` from the process's start). Per service the longest
  lifetime is shown (kills cut the others short) and the worst lifetime decides the goal.
- *Steady p99* before a fault: the median of the 5-second windows' p99 (by event time) in the two
  minutes before it. *Recovered* once three windows in a row are within 1.5 times that (or 20 ms of
  it); the recovery time is from the fault's start to the first of those windows.
- *Lost*: an input offset that no score or dead letter names in its lineage headers.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.bench.measure import percentile
from tools.bench.soak import FaultRun, SoakRun
from tools.bench.soak_watch import InstanceSample

RSS_GROWTH_GOAL = 0.05
RECOVERY_GOAL_S = 30.0
STEADY_BEFORE_S = 120.0
QUIET_AFTER_FAULT_S = 60.0
"""Windows this soon after a fault are left out of a service's steady latency."""
MIN_WINDOW_EVENTS = 20
"""A window with fewer latencies has no meaningful p99."""
RECOVERED_WINDOWS = 3


@dataclass(frozen=True)
class Lifetime:
    instance: str
    pid: int
    first_s: float
    last_s: float
    rss_start_mb: float
    """Median RSS over the first minute after warm-up."""
    rss_end_mb: float
    """Median RSS over the last minute."""
    state_start_mb: float
    """The state store's encoded size at the same two points: growth that is the state filling up
    to its bound, not a leak."""
    state_end_mb: float

    @property
    def growth(self) -> float:
        return self.rss_end_mb / self.rss_start_mb - 1

    @property
    def minutes(self) -> float:
        return (self.last_s - self.first_s) / 60


@dataclass(frozen=True)
class ServiceFigures:
    service: str
    target_rate: float
    sent_rate: float
    inputs: int
    scored: int
    dead_lettered: int
    lost: int
    duplicated: int
    p50_ms: float
    p99_ms: float
    """Over events outside warm-up and the minute after each fault that hit the service."""
    worst_window_p99_ms: float
    max_lag: int
    stalled_samples: int
    lifetimes: list[Lifetime]
    state_mb_end: float
    state_entries_end: float

    @property
    def longest(self) -> Lifetime | None:
        return max(self.lifetimes, key=lambda life: life.last_s - life.first_s, default=None)

    @property
    def worst_growth(self) -> float:
        return max((life.growth for life in self.lifetimes), default=float("nan"))


@dataclass(frozen=True)
class FaultFigures:
    run: FaultRun
    recovery: dict[str, tuple[float, float, float]]
    """service → (steady p99 before, peak window p99 after, seconds to recover; NaN = not in 3 min)."""

    @property
    def worst_recovery_s(self) -> float:
        values = [r for _, _, r in self.recovery.values()]
        return float("nan") if any(math.isnan(v) for v in values) else max(values, default=0.0)


class Windows:
    """One service's latencies by 5-second window of event time, in seconds since the soak began."""

    def __init__(self, run: SoakRun, service: str) -> None:
        out = run.outputs[service]
        self.width = run.config.window_s
        self.by_start = {w * self.width - run.started_epoch_ms / 1000: lat for w, lat in out.latencies.items()}
        self.starts = sorted(self.by_start)

    def p99(self, start: float) -> float:
        values = self.by_start.get(start, ())
        return percentile(values, 0.99) if len(values) >= MIN_WINDOW_EVENTS else float("nan")

    def between(self, begin: float, end: float) -> list[float]:
        return [s for s in self.starts if begin <= s < end]


def analyse(run: SoakRun) -> tuple[list[ServiceFigures], list[FaultFigures]]:
    services = [_service(run, s) for s in run.services]
    return services, [_fault(run, f) for f in run.faults]


def _hits(fault: FaultRun, service: str) -> bool:
    return fault.fault.service in (None, service)


def _service(run: SoakRun, service: str) -> ServiceFigures:
    out = run.outputs[service]
    windows = Windows(run, service)
    quiet = [s for s in windows.starts if s >= run.config.warmup_s and not any(
        _hits(f, service) and f.started - windows.width <= s < f.ended + QUIET_AFTER_FAULT_S for f in run.faults)]
    steady = [lat for s in quiet for lat in windows.by_start[s]]
    marks = run.inputs.get(service, {})
    lost = duplicated = 0
    for partition, (low, high) in marks.items():
        missing, twice = out.lost_and_duplicated(partition, low, high)
        lost, duplicated = lost + missing, duplicated + twice
    samples = [x for x in run.instance_samples if x.service == service]
    last_at = max((x.at for x in samples), default=0.0)
    final = [x for x in samples if x.at == last_at]
    lags = [x.lag for x in run.lag_samples if x.service == service and x.lag >= 0]
    return ServiceFigures(
        service, run.config.load_fraction * run.saturation[service],
        run.sent.get(service, 0) / max(run.load_seconds, 1),
        sum(high - low for low, high in marks.values()), sum(out.scored.values()), sum(out.dead_lettered.values()),
        lost, duplicated, percentile(steady, 0.5), percentile(steady, 0.99),
        max((p for s in windows.starts if not math.isnan(p := windows.p99(s))), default=float("nan")),
        max(lags, default=-1), sum(1 for x in samples if x.stalled > 0), _lifetimes(samples, run.config.warmup_s),
        sum(x.state_bytes for x in final) / 2**20, sum(x.state_entries for x in final))


def _lifetimes(samples: Sequence[InstanceSample], warmup_s: float) -> list[Lifetime]:
    by_pid: dict[tuple[str, int], list[InstanceSample]] = defaultdict(list)
    for sample in samples:
        by_pid[(sample.instance, sample.pid)].append(sample)
    lives = []
    for (instance, pid), rows in by_pid.items():
        first, last = rows[0].at, rows[-1].at
        warm = [r for r in rows if r.at >= first + warmup_s]
        if not warm or warm[-1].at - warm[0].at < 120:
            continue  # too short after warm-up to say anything about growth
        head = [r for r in warm if r.at < warm[0].at + 60]
        tail = [r for r in warm if r.at > warm[-1].at - 60]
        lives.append(Lifetime(instance, pid, first, last, statistics.median(r.rss_mb for r in head),
                              statistics.median(r.rss_mb for r in tail),
                              statistics.median(r.state_bytes for r in head) / 2**20,
                              statistics.median(r.state_bytes for r in tail) / 2**20))
    return lives


def _fault(run: SoakRun, fault: FaultRun) -> FaultFigures:
    recovery = {}
    for service in run.services:
        if not _hits(fault, service):
            continue
        windows = Windows(run, service)
        before = [p for s in windows.between(fault.started - STEADY_BEFORE_S, fault.started - windows.width)
                  if not math.isnan(p := windows.p99(s))]
        steady = statistics.median(before) if before else float("nan")
        after = windows.between(fault.started - windows.width, fault.started + 180)
        p99s = [windows.p99(s) for s in after]
        limit = max(1.5 * steady, steady + 20)
        recovered = float("nan")
        for i in range(len(after)):
            run_of = p99s[i:i + RECOVERED_WINDOWS]
            if len(run_of) == RECOVERED_WINDOWS and all(not math.isnan(p) and p <= limit for p in run_of):
                recovered = max(0.0, after[i] - fault.started)
                break
        peak = max((p for p in p99s if not math.isnan(p)), default=float("nan"))
        recovery[service] = (steady, peak, recovered)
    return FaultFigures(fault, recovery)


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def _ms(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:,.0f}"


def format_soak(run: SoakRun, services: list[ServiceFigures], faults: list[FaultFigures]) -> str:
    c = run.config
    lines = [f"## Soak: {run.load_seconds / 60:.1f} minutes, {len(run.services)} services, "
             f"{c.load_fraction:.0%} of their shared saturation",
             "",
             f"Load for {c.duration_s / 60:.0f} min; a SIGKILL every {c.kill_every_s / 60:.0f} min, a broker restart, "
             f"an instance added and removed; warm-up {c.warmup_s:.0f} s; samples every {c.sample_every_s:.0f} s, "
             f"latency windows of {c.window_s:.0f} s. " + (
                 f"All inputs scored {run.drained_after_s:.0f} s after the load stopped."
                 if not math.isnan(run.drained_after_s) else "Some inputs were still unscored at the end."),
             "",
             "| service | saturation shared (events/s) | target / sent events/s | inputs | scored | dead-lettered | "
             "lost | scored twice | p50 / p99 steady (ms) | worst 5-s p99 (ms) | max lag | stalled samples | "
             "RSS over the longest life (MiB) | worst RSS growth | state at end (MiB, keys) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in services:
        life = s.longest
        rss = (f"{life.rss_start_mb:.0f} → {life.rss_end_mb:.0f} ({life.minutes:.0f} min; state "
               f"{life.state_start_mb:.1f} → {life.state_end_mb:.1f})" if life else "—")
        growth = ("—" if math.isnan(s.worst_growth)
                  else f"{s.worst_growth:+.1%} {_mark(s.worst_growth < RSS_GROWTH_GOAL)}")
        lines.append(
            f"| {s.service} | {run.saturation[s.service]:,.0f} | {s.target_rate:,.0f} / {s.sent_rate:,.0f} | "
            f"{s.inputs:,} | {s.scored:,} | {s.dead_lettered:,} | {s.lost:,} | {s.duplicated:,} | "
            f"{_ms(s.p50_ms)} / {_ms(s.p99_ms)} | {_ms(s.worst_window_p99_ms)} | {s.max_lag:,} | {s.stalled_samples} | "
            f"{rss} | {growth} | {s.state_mb_end:.1f}, {s.state_entries_end:,.0f} |")
    lines += ["", "| at (min) | fault | took (s) | per service: steady p99 → peak p99 (ms), recovered after (s) | "
              f"≤ {RECOVERY_GOAL_S:.0f} s |", "|---|---|---|---|---|"]
    for f in faults:
        per = "; ".join(f"{svc} {_ms(a)} → {_ms(b)}, {'never' if math.isnan(r) else f'{r:.0f}'}"
                        for svc, (a, b, r) in f.recovery.items())
        worst = f.worst_recovery_s
        ok = not math.isnan(worst) and worst <= RECOVERY_GOAL_S
        lines.append(f"| {f.run.started / 60:.1f} | {f.run.fault.kind} {f.run.detail or f.run.fault.service or ''} | "
                     f"{f.run.ended - f.run.started:.1f} | {per} | {_mark(ok)} |")
    lost = sum(s.lost for s in services)
    stalls = sum(s.stalled_samples for s in services)
    growths = [s.worst_growth for s in services if not math.isnan(s.worst_growth)]
    recoveries = [f.worst_recovery_s for f in faults]
    lines += ["", "Goals: "
              f"RSS growth after warm-up < 5 % {_mark(bool(growths) and max(growths) < RSS_GROWTH_GOAL)} "
              f"(worst {max(growths, default=float('nan')):+.1%}); "
              f"p99 back within {RECOVERY_GOAL_S:.0f} s of each fault "
              f"{_mark(all(not math.isnan(r) and r <= RECOVERY_GOAL_S for r in recoveries))}; "
              f"no stall {_mark(stalls == 0)}; nothing lost {_mark(lost == 0)} ({lost} lost). "
              f"Unplanned restarts: {len(run.unplanned_restarts)}"
              + (f" ({'; '.join(f'{at / 60:.1f} min {name}: {why}' for at, name, why in run.unplanned_restarts)})"
                 if run.unplanned_restarts else "") + "."]
    failures = {s: n for s, n in run.send_failures.items() if n}
    if failures:
        lines.append(f"Producer delivery failures (never written, so not inputs): {failures}.")
    if run.reader_errors:
        lines.append(f"Reader errors: {run.reader_errors[:3]}")
    return "\n".join(lines)


def plot_soak(run: SoakRun, services: Iterable[ServiceFigures], path: Path) -> Path:
    from tools.bench.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    colours: dict[str, Any] = {}
    for s in services:
        windows = Windows(run, s.service)
        xs = [w / 60 for w in windows.starts]
        line = axes[1].plot(xs, [windows.p99(w) for w in windows.starts], label=s.service, linewidth=0.9)[0]
        colours[s.service] = line.get_color()
        out = run.outputs[s.service]
        rate = {(w * run.config.window_s - run.started_epoch_ms / 1000) / 60:
                (out.scored.get(w, 0) + out.dead_lettered.get(w, 0)) / run.config.window_s
                for w in sorted(set(out.scored) | set(out.dead_lettered))}
        axes[3].plot(list(rate), list(rate.values()), color=colours[s.service], linewidth=0.8, label=s.service)
        lags = [x for x in run.lag_samples if x.service == s.service and x.lag >= 0]
        axes[2].plot([x.at / 60 for x in lags], [x.lag for x in lags], color=colours[s.service], label=s.service)
        by_pid: dict[int, list[InstanceSample]] = defaultdict(list)
        for x in run.instance_samples:
            if x.service == s.service:
                by_pid[x.pid].append(x)
        for i, rows in enumerate(by_pid.values()):
            axes[0].plot([r.at / 60 for r in rows], [r.rss_mb for r in rows], color=colours[s.service],
                         label=s.service if i == 0 else None)
    for f in run.faults:
        for ax in axes:
            ax.axvline(f.started / 60, color="grey", linestyle=":", linewidth=0.8)
        axes[0].annotate(f"{f.fault.kind} {f.detail or f.fault.service or ''}", (f.started / 60, 1.0),
                         xycoords=("data", "axes fraction"), rotation=90, fontsize=7, va="top", ha="right")
    axes[0].set_ylabel("RSS (MiB)")
    axes[1].set_ylabel("p99 per 5 s (ms)")
    axes[1].set_yscale("log")
    axes[2].set_ylabel("committed lag (records)")
    axes[3].set_ylabel("outputs / s")
    axes[3].set_xlabel("minutes since the load started")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    axes[0].set_title("Soak: every service under steady load, with faults (dotted lines)")
    return save_figure(fig, plt, path)
