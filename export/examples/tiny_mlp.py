"""A small MLP on synthetic logistic data: the reference model of the export framework.

``y ~ Bernoulli(sigmoid(x · w_true))`` with ``x ~ N(0, I)``, so the best achievable AUC is
known. Two sizes: ``tiny`` (8 features, ~160 parameters, trains in well under a second)
and ``mlp`` (64 features, 256-256-64 hidden, ~99k parameters) for realistic timings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from export.pipeline import TrainedModel
from export.progress import TrainingProgress
from export.quantize import RunFn
from export.registry import RecipeArgs
from export.spec import ExportSpec
from shared.models.manifest import TensorSpec, TrainingInfo


@dataclass(frozen=True)
class MlpConfig:
    name: str
    features: int
    hidden: tuple[int, ...]
    rows: int
    epochs: int
    batch_size: int = 256
    lr: float = 3e-3


TINY = MlpConfig("tiny", features=8, hidden=(16,), rows=4000, epochs=3)
MLP = MlpConfig("mlp", features=64, hidden=(256, 256, 64), rows=40_000, epochs=4)


class Mlp(nn.Module):
    """``features[batch, n] → score[batch, 1]`` (a probability)."""

    def __init__(self, features: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(features))


def make_spec(config: MlpConfig) -> ExportSpec:
    def samples(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"features": rng.normal(size=(batch, config.features)).astype(np.float32)}

    return ExportSpec(
        name=config.name,
        inputs=(TensorSpec(name="features", dtype="float32", shape=("batch", config.features)),),
        outputs=(TensorSpec(name="score", dtype="float32", shape=("batch", 1)),),
        sample_inputs=samples,
        atol=1e-5,
        preprocessing={"n_features": config.features},
        feature_spec={"features": [f"x{i}" for i in range(config.features)]},
    )


def synthetic(rows: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the fixed logistic world (``w_true`` comes from seed 42, rows from ``seed``)."""
    w_true = np.random.default_rng(42).normal(scale=1.5 / np.sqrt(features), size=features)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    y = (rng.random(rows) < 1 / (1 + np.exp(-(x @ w_true)))).astype(np.float32)
    return x, y


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Rank-based ROC AUC (Mann-Whitney U), ties averaged."""
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ranks = (np.bincount(inverse, ranks) / counts)[inverse]
    positives = y > 0.5
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / max(n_pos * n_neg, 1))


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    p = np.clip(p.reshape(-1).astype(np.float64), 1e-7, 1 - 1e-7)
    logloss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return {"auc": auc(y, p), "logloss": logloss}


def fit(model: Mlp, x: np.ndarray, y: np.ndarray, config: MlpConfig, epochs: int, progress: bool) -> None:
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.BCELoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).unsqueeze(1)
    steps = (len(x) + config.batch_size - 1) // config.batch_size
    generator = torch.Generator().manual_seed(0)
    with TrainingProgress(config.name, epochs, steps, enabled=progress) as bar:
        for _ in range(epochs):
            model.train()
            for idx in torch.split(torch.randperm(len(x), generator=generator), config.batch_size):
                optimiser.zero_grad()
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                optimiser.step()
                bar.step(loss=loss.item())
            bar.end_epoch()


def train(config: MlpConfig, args: RecipeArgs) -> TrainedModel:
    """Train (or fine-tune from ``args.from_version``) and evaluate on a held-out split."""
    torch.manual_seed(args.seed)
    rows = 512 if args.tiny else config.rows
    epochs = args.epochs or (1 if args.tiny else config.epochs)
    x, y = synthetic(rows, config.features, seed=args.seed)
    x_test, y_test = synthetic(max(rows // 4, 256), config.features, seed=args.seed + 10_000)
    model = Mlp(config.features, config.hidden)
    if args.from_version:
        from export.checkpoint import load_from_version

        load_from_version(model, args.repository, config.name, args.from_version)
    start = time.perf_counter()
    fit(model, x, y, config, epochs, args.progress)
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        metrics = evaluate(y_test, model(torch.from_numpy(x_test)).numpy())

    def metric_fn(run: RunFn) -> dict[str, float]:
        return evaluate(y_test, run({"features": x_test})["score"])

    return TrainedModel(
        module=model,
        spec=make_spec(config),
        training=TrainingInfo(data=f"synthetic-logistic:seed={args.seed}", rows=rows, epochs=epochs,
                              seconds=round(seconds, 3), from_version=args.from_version),
        metrics=metrics,
        heldout=[{"features": x_test[:1]}, {"features": x_test[:7]}, {"features": x_test[:256]}],
        metric_fn=metric_fn,
        variants=args.variants,
        timings={"train": seconds},
    )
