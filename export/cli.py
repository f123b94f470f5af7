"""``shopstream export <model>``: train or fine-tune, evaluate, export, gate, publish.

:func:`run_export` takes the arguments after ``export`` and returns an exit code; the main
CLI only dispatches to it. ``shopstream export list`` shows the known recipes.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from export import registry
from export.ort_throughput import bench_version
from export.pipeline import export_and_publish
from shared.errors import ShopstreamError
from shared.models.manifest import ModelManifest

logger = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shopstream export", description=__doc__.splitlines()[0])
    p.add_argument("model", help="recipe name, or 'list'")
    p.add_argument("--from", dest="from_version", metavar="VERSION", help="fine-tune from this version")
    p.add_argument("--data", type=Path, default=registry.DEFAULT_DATA_DIR, help="real data sets folder")
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="model repository root")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--tiny", action="store_true", help="seconds-long configuration (smoke tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default="fp16,int8", help="comma-separated: fp16,int8 or '' for none")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for training")
    p.add_argument("--version", help="write this version instead of the next one")
    p.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe-specific option (repeatable)")
    p.add_argument("--bench", action="store_true", help="measure ORT CPU throughput after publishing")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run_export(argv: Sequence[str]) -> int:
    """Run the export command; 0 on success, 1 on a shopstream error (message printed)."""
    ns = parser().parse_args(list(argv))
    console = Console(stderr=True)
    if ns.model == "list":
        _print_recipes(console)
        return 0
    args = registry.RecipeArgs(
        models_dir=ns.models_dir, data_dir=ns.data, from_version=ns.from_version, epochs=ns.epochs,
        tiny=ns.tiny, seed=ns.seed, variants=tuple(v for v in ns.variants.split(",") if v),
        progress=not ns.quiet, options=dict(o.split("=", 1) for o in ns.options if "=" in o),
    )
    torch.set_num_threads(ns.threads)
    torch.manual_seed(ns.seed)  # weight initialisation happens in the recipes, before their training loops seed
    try:
        recipe = registry.get(ns.model)
        start = time.perf_counter()
        trained = recipe.train(args)
        manifest = export_and_publish(trained, args.repository, version=ns.version)
    except ShopstreamError as exc:
        console.print(f"[red]export {ns.model} failed:[/red] {type(exc).__name__}: {exc}")
        return 1
    _print_manifest(console, manifest, time.perf_counter() - start)
    if ns.bench:
        _print_bench(console, args, manifest)
    return 0


def _print_recipes(console: Console) -> None:
    table = Table("model", "description")
    for name, recipe in registry.discover().items():
        table.add_row(name, recipe.description)
    console.print(table)


def _print_manifest(console: Console, m: ModelManifest, seconds: float) -> None:
    table = Table(title=f"{m.name} {m.version} ({seconds:.1f}s)")
    table.add_column("file")
    table.add_column("bytes", justify="right")
    table.add_column("metrics / change")
    table.add_row(m.file, f"{m.size_bytes:,}", ", ".join(f"{k}={v:.4f}" for k, v in m.metrics.items()))
    for kind, v in m.variants.items():
        table.add_row(v.file, f"{v.size_bytes:,}", ", ".join(f"Δ{k}={d:+.4f}" for k, d in v.metric_delta.items())
                      or kind)
    console.print(table)
    if m.parity:
        diffs = ", ".join(f"{k}={v:.2g}" for k, v in m.parity.max_abs_diff.items())
        console.print(f"parity passed (atol {m.parity.atol:g}): max |torch - onnx| {diffs}")
    console.print("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in m.timings.items()))


def _print_bench(console: Console, args: registry.RecipeArgs, m: ModelManifest) -> None:
    table = Table("variant", "batch", "rows/s", "p50 ms", "p99 ms", title="ORT CPU, 1 thread")
    for variant in (None, *m.variants):
        for row in bench_version(args.repository, m.name, m.version, variant=variant):
            table.add_row(variant or "fp32", str(row.batch), f"{row.rows_per_s:,.0f}", f"{row.p50_ms:.3f}",
                          f"{row.p99_ms:.3f}")
    console.print(table)
