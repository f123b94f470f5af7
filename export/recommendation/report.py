"""The results table of docs/recommendation.md: published rows, a popularity baseline, ours.

``python -m export.recommendation.report beauty=<models-dir>/recommendation/v0001 games=...``
reads the manifests written by ``shopstream export recommendation --set data=...`` (their
``onnx_*`` metrics come from the exported graph through the serving path) and prints markdown.
A data set may be named more than once (e.g. the model trained on the training split and its
refit through the validation items); each run's row says which it is, and the popularity
baseline gets both rows too, so the refit's share of the gain is visible.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from export.recommendation.data import NEGATIVES, DatasetName, load_dataset, sample_negatives
from export.recommendation.evaluate import evaluate

logger = logging.getLogger(__name__)

COLUMNS = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR")
PUBLISHED: dict[tuple[str, str], dict[str, dict[str, float]]] = {
    ("beauty", "sampled"): {"SASRec (S3-Rec paper)": {"HR@10": 0.4696, "NDCG@10": 0.3156},
                            "S3-Rec (paper)": {"HR@10": 0.5506, "NDCG@10": 0.3732}},
    ("beauty", "full"): {"SASRec (S3-Rec repo)": {"HR@10": 0.0605, "NDCG@10": 0.0318},
                         "S3-Rec (repo)": {"HR@10": 0.0647, "NDCG@10": 0.0327}},
    ("games", "sampled"): {"SASRec (paper)": {"HR@10": 0.7410, "NDCG@10": 0.5360}},
}


def popularity_report(
    name: DatasetName, data_dir: Path | None = None, through_validation: bool = False
) -> dict[str, dict[str, float]]:
    """Most-popular-in-training baseline under both protocols (same users, same negatives).

    ``through_validation`` counts the validation items too, as a refit model sees them.
    """
    ds = load_dataset(name, data_dir)
    cut = 1 if through_validation else 2
    counts = np.bincount(np.concatenate([s[:-cut] for s in ds.sequences]), minlength=ds.num_items + 1)
    row = counts.astype(np.float32)

    def predict(sequences: Sequence[Sequence[int]]) -> np.ndarray:
        return np.repeat(row[None, :], len(sequences), axis=0)

    return evaluate(predict, ds, "test", sample_negatives(ds, NEGATIVES[name]), 50)


def _row(label: str, metrics: dict[str, float]) -> str:
    return f"| {label} | " + " | ".join(f"{metrics[c]:.4f}" if c in metrics else "" for c in COLUMNS) + " |"


def table(name: str, protocol: str, ours: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    lines = [f"| {name} / {protocol} | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += [_row(label, m) for label, m in PUBLISHED.get((name, protocol), {}).items()]
    lines += [_row(label, m[protocol]) for label, m in ours.items() if protocol in m]
    return lines


def manifest_metrics(version_dir: Path) -> dict[str, dict[str, float]]:
    """``onnx_<protocol>_<metric>`` entries of a manifest, regrouped by protocol."""
    metrics = json.loads((version_dir / "manifest.json").read_text())["metrics"]
    out: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith("onnx_") and key.count("_") >= 2:
            _, protocol, metric = key.split("_", 2)
            out.setdefault(protocol, {})[metric] = value
    return out


def run_label(version_dir: Path) -> str:
    """What a run was trained on, from its manifest."""
    extra = json.loads((version_dir / "manifest.json").read_text())["training"].get("extra", {})
    data = "refit through the validation items" if extra.get("refit") else "training split"
    return f"ours: SASRec-CE, {data} (ONNX, serving path, {version_dir.name})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="dataset=version-dir, e.g. beauty=/tmp/m/recommendation/v0001")
    p.add_argument("--data-dir", type=Path)
    args = p.parse_args()
    runs: dict[str, list[Path]] = {}
    for run in args.runs:
        name, path = run.split("=", 1)
        runs.setdefault(name, []).append(Path(path))
    for name, paths in runs.items():
        ours = {
            "popularity, training split": popularity_report(name, args.data_dir),  # type: ignore[arg-type]
            "popularity, through the validation items": popularity_report(name, args.data_dir, True),  # type: ignore[arg-type]
        }
        ours |= {run_label(path): manifest_metrics(path) for path in paths}
        for protocol in ("sampled", "full"):
            print("\n".join(table(name, protocol, ours)) + "\n")


if __name__ == "__main__":
    main()
