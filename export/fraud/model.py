"""The fraud model: an MLP over numeric features plus embeddings of hashed categories.

Standardisation constants are buffers inside the module, so the exported ONNX graph takes
raw features and the scorer needs no preprocessing code of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from services.fraud.features import BASE_FEATURES, CATEGORICAL_BUCKETS, CATEGORICAL_FEATURES

logger = logging.getLogger(__name__)

BUCKETS = tuple(CATEGORICAL_BUCKETS[c] for c in CATEGORICAL_FEATURES)


class FraudNet(nn.Module):
    """``(numeric [B, F] float32, categorical [B, C] int64) -> probability [B]``."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        n_numeric: int,
        buckets: Sequence[int] = (),
        emb_dim: int = 8,
        hidden: Sequence[int] = (64, 32),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_numeric))
        self.register_buffer("std", torch.ones(n_numeric))
        self.embeddings = nn.ModuleList(nn.Embedding(n, emb_dim) for n in buckets)
        width = n_numeric + emb_dim * len(buckets)
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def set_scaler(self, x: np.ndarray) -> None:
        """Fit the standardisation buffers on training features."""
        self.mean.copy_(torch.from_numpy(x.mean(axis=0)).float())
        self.std.copy_(torch.from_numpy(x.std(axis=0) + 1e-6).float())

    def logits(self, numeric: torch.Tensor, categorical: torch.Tensor | None = None) -> torch.Tensor:
        parts = [(numeric - self.mean) / self.std]
        if categorical is not None:
            parts += [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        out: torch.Tensor = self.mlp(torch.cat(parts, dim=1))
        return out.squeeze(1)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.logits(numeric, categorical))


class SimLike(Protocol):
    @property
    def numeric(self) -> np.ndarray: ...
    @property
    def categorical(self) -> np.ndarray: ...
    @property
    def label(self) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    show_progress: bool = True


def train(
    model: FraudNet,
    numeric: np.ndarray,
    categorical: np.ndarray | None,
    labels: np.ndarray,
    config: TrainConfig,
    fit_scaler: bool = True,
) -> FraudNet:
    """Adam on binary cross-entropy; ``fit_scaler=False`` keeps the scaler (fine-tuning)."""
    torch.manual_seed(config.seed)
    if fit_scaler:
        model.set_scaler(numeric)
    x = torch.from_numpy(numeric).float()
    c = torch.from_numpy(categorical).long() if categorical is not None else None
    y = torch.from_numpy(labels).float()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(config.seed)
    model.train()
    with Progress(disable=not config.show_progress, transient=True) as progress:
        task = progress.add_task("train fraud MLP", total=config.epochs)
        for _ in range(config.epochs):
            for idx in torch.split(torch.randperm(len(y), generator=gen), config.batch_size):
                opt.zero_grad()
                loss = loss_fn(model.logits(x[idx], c[idx] if c is not None else None), y[idx])
                loss.backward()
                opt.step()
            progress.advance(task)
    model.eval()
    return model


def predict(model: FraudNet, numeric: np.ndarray, categorical: np.ndarray | None = None) -> np.ndarray:
    """Probabilities for a feature matrix, in batches of 8,192."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(numeric), 8192):
            x = torch.from_numpy(numeric[start : start + 8192]).float()
            c = None if categorical is None else torch.from_numpy(categorical[start : start + 8192]).long()
            out.append(model(x, c).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def make_mlp(n_numeric: int) -> FraudNet:
    """The shop model: numeric features plus a 4-wide embedding per hashed category."""
    return FraudNet(n_numeric, BUCKETS, emb_dim=4, hidden=(64, 32), dropout=0.1)


def fit_mlp(data: SimLike, *, velocity: bool = True, epochs: int = 8, seed: int = 0) -> FraudNet:
    """Train a fresh shop model (``velocity=False``: the ablation without velocity features)."""
    numeric = data.numeric if velocity else data.numeric[:, : len(BASE_FEATURES)]
    cfg = TrainConfig(epochs=epochs, batch_size=512, lr=3e-3, weight_decay=1e-4, seed=seed)
    return train(make_mlp(numeric.shape[1]), numeric, data.categorical, data.label.astype(np.float32), cfg)
