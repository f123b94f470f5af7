"""PNG plots for docs/benchmarks.md (matplotlib, headless)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.bench.latency import LatencyResult
from tools.bench.model_limit import ModelLimit
from tools.bench.suites import SuiteReport

logger = logging.getLogger(__name__)


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def plot_model_limits(models: Sequence[ModelLimit], path: Path, title: str = "") -> Path:
    """Events/s vs batch size (log-log), one line per service, error bars = half-range."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for m in models:
        batches = [p.batch for p in m.points]
        rates = [p.median / m.rows_per_event for p in m.points]
        spreads = [p.spread / m.rows_per_event for p in m.points]
        provider = m.provider.replace("ExecutionProvider", "")
        ax.errorbar(batches, rates, yerr=spreads, marker="o", capsize=3, linestyle="-" if m.threads == 1 else "--",
                    label=f"{m.service} ({m.model} {m.version}, {m.variant}, {provider}, {m.threads_label})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size (model rows)")
    ax.set_ylabel("events / s")
    ax.set_title(title or "Model limit: ONNX Runtime throughput vs batch size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, plt, path)


def plot_latency(service: str, results: Sequence[LatencyResult], path: Path) -> Path:
    """p50/p95/p99 latency vs offered load."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    rates = [r.achieved for r in results]
    for label, values in (("p50", [r.p50_ms for r in results]), ("p95", [r.p95_ms for r in results]),
                          ("p99", [r.p99_ms for r in results])):
        ax.plot(rates, values, marker="o", label=label)
    for r in results:
        ax.annotate(f"{r.fraction:.0%}", (r.achieved, r.p50_ms), textcoords="offset points", xytext=(0, -12),
                    ha="center", fontsize=8)
    ax.set_xlabel("offered load (events / s; % of saturation)")
    ax.set_ylabel("event time → score acknowledged (ms)")
    ax.set_title(f"{service}: latency vs load")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return save_figure(fig, plt, path)


def plot_scaling(report: SuiteReport, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    names = list(report.runs)
    counts = [int(name.split()[0]) for name in names]
    medians = [report.median(n)[0] for n in names]
    spreads = [report.median(n)[1] for n in names]
    ax.errorbar(counts, medians, yerr=spreads, marker="o", capsize=3, label="measured")
    ax.plot(counts, [medians[0] * c for c in counts], linestyle="--", alpha=0.5, label="linear from 1 instance")
    cpu = [r.cpu_s_per_1000 for r in report.runs[names[0]]]
    if cpu and min(cpu) > 0:
        cores = os.cpu_count() or 1
        ceiling = cores * 1000 / (sum(cpu) / len(cpu))
        ax.axhline(ceiling, color="grey", linestyle=":", label=f"{cores}-core ceiling (cores ÷ CPU per event)")
    ax.set_xticks(counts)
    ax.set_xlabel(f"instances (one group, {report.partitions} partitions)")
    ax.set_ylabel("events / s")
    ax.set_title(f"{report.service}: scaling on this machine")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return save_figure(fig, plt, path)


def save_figure(fig: Any, plt: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    logger.info("wrote %s", path)
    return path
