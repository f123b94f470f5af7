"""A published version scored, unchanged, on a later slice of the simulated clickstream.

The "no update" row of the fine-tuning experiment (docs/recommendation.md)::

    python -m export.recommendation.zero_shot --models-dir models --version v0001 \\
        --skip 200000 --events 60000

Same users, split, negatives and serving path as ``shopstream export recommendation
--set skip=200000 --set events=60000`` (with or without ``--from``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from export.recommendation.data import sample_negatives
from export.recommendation.evaluate import evaluate
from export.recommendation.sim_data import sim_clicks
from services.recommendation.ranker import OnnxRanker
from shared.models.repository import ModelRepository
from shared.models.session import OnnxModel

logger = logging.getLogger(__name__)


def zero_shot(models_dir: Path, version: str, skip: int, events: int) -> dict[str, dict[str, float]]:
    repo = ModelRepository(models_dir)
    manifest = repo.verify("recommendation", version)
    model = OnnxModel(repo.path("recommendation", version) / "model.onnx", providers=["cpu"])
    max_len = int(manifest.preprocessing["max_len"])
    ds = sim_clicks(events, skip=skip).dataset
    return evaluate(OnnxRanker(model, max_len), ds, "test", sample_negatives(ds, 100), max_len)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models-dir", type=Path, default=Path("models"))
    p.add_argument("--version", default="v0001")
    p.add_argument("--skip", type=int, default=200_000)
    p.add_argument("--events", type=int, default=60_000)
    args = p.parse_args()
    print(json.dumps(zero_shot(args.models_dir, args.version, args.skip, args.events)))


if __name__ == "__main__":
    main()
