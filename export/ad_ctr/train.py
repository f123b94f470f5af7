"""Training loop for the CTR model (and, jointly, an optional creative text tower)."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from export.ad_ctr.metrics import auc
from export.ad_ctr.model import DcnV2

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CtrData:
    """Encoded rows: sparse ids ``[n, F]``, labels ``[n]``, creative index ``[n]`` (text models)."""

    sparse: np.ndarray
    label: np.ndarray
    creative: np.ndarray | None = None

    def take(self, idx: np.ndarray) -> CtrData:
        creative = None if self.creative is None else self.creative[idx]
        return CtrData(self.sparse[idx], self.label[idx], creative)

    def __len__(self) -> int:
        return len(self.label)


class TextTower(nn.Module):
    """A trainable map from creative index to text embedding (the catalogue lives inside)."""

    out_dim: int

    def forward(self, creative: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-5
    text_lr: float = 5e-4
    patience: int = 2
    seed: int = 0
    embed_l2: float = 0.0
    """L2 penalty on the embedding rows a batch uses (sparse-friendly, unlike weight decay)."""
    group_creatives: int = 0
    """>0: each batch holds every row of this many creatives, so a transformer text tower runs
    on few distinct titles per step (it costs per title, not per row); 0: plain row batches."""


@dataclass
class TrainResult:
    best_epoch: int
    val_auc: list[float] = field(default_factory=list)
    seconds: float = 0.0


def text_embedding(tower: TextTower | None, creative: torch.Tensor | None) -> torch.Tensor | None:
    """Run the tower once per distinct creative in the batch, as the serving cache would."""
    if tower is None or creative is None:
        return None
    uniq, inverse = torch.unique(creative, return_inverse=True)
    out: torch.Tensor = tower(uniq)[inverse]
    return out


@torch.no_grad()
def predict_logit(model: DcnV2, data: CtrData, tower: TextTower | None = None, batch: int = 4096) -> np.ndarray:
    """Logits in eval mode; the text tower runs once per distinct creative, not per row."""
    model.eval()
    table, inverse = None, None
    if tower is not None and data.creative is not None:
        tower.eval()
        uniq, inverse = np.unique(data.creative, return_inverse=True)
        table = torch.cat([tower(torch.from_numpy(uniq[s : s + 512])) for s in range(0, len(uniq), 512)])
    out = []
    for start in range(0, len(data), batch):
        stop = min(start + batch, len(data))
        text = None if table is None or inverse is None else table[torch.from_numpy(inverse[start:stop])]
        out.append(model.logit(torch.from_numpy(data.sparse[start:stop]), text).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _optimizer(model: DcnV2, tower: TextTower | None, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups: list[dict[str, object]] = [{"params": list(model.parameters()), "lr": cfg.lr}]
    if tower is not None:
        trainable = [p for p in tower.parameters() if p.requires_grad]
        if trainable:
            groups.append({"params": trainable, "lr": cfg.text_lr})
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)  # type: ignore[arg-type]


def _epoch(model: DcnV2, tower: TextTower | None, data: CtrData, opt: torch.optim.Optimizer, cfg: TrainConfig,
           rng: np.random.Generator) -> float:
    model.train()
    if tower is not None:
        tower.train()
    loss_fn = nn.BCEWithLogitsLoss()
    total = 0.0
    for idx in _batches(data, cfg, rng):
        part = data.take(idx)
        creative = None if part.creative is None else torch.from_numpy(part.creative)
        logit = model.logit(torch.from_numpy(part.sparse), text_embedding(tower, creative))
        loss = loss_fn(logit, torch.from_numpy(part.label.astype(np.float32)))
        if cfg.embed_l2:
            loss = loss + cfg.embed_l2 * model.embedding(torch.from_numpy(part.sparse)).pow(2).sum(dim=(1, 2)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(part)
    return total / max(len(data), 1)


def _batches(data: CtrData, cfg: TrainConfig, rng: np.random.Generator) -> list[np.ndarray]:
    if not cfg.group_creatives or data.creative is None:
        order = rng.permutation(len(data))
        return [order[s : s + cfg.batch_size] for s in range(0, len(order), cfg.batch_size)]
    creatives = rng.permutation(np.unique(data.creative))
    groups = [creatives[s : s + cfg.group_creatives] for s in range(0, len(creatives), cfg.group_creatives)]
    return [rng.permutation(np.flatnonzero(np.isin(data.creative, g))) for g in groups]


def train(model: DcnV2, train_data: CtrData, val_data: CtrData, cfg: TrainConfig,
          tower: TextTower | None = None, label: str = "train") -> TrainResult:
    """Adam on BCE with early stopping on validation AUC; restores the best epoch's weights."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    opt = _optimizer(model, tower, cfg)
    result, best, best_state = TrainResult(best_epoch=0), -1.0, None
    start = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task(label, total=cfg.epochs)
        for epoch in range(cfg.epochs):
            loss = _epoch(model, tower, train_data, opt, cfg, rng)
            val = auc(val_data.label, predict_logit(model, val_data, tower))
            result.val_auc.append(val)
            logger.info("%s epoch %d loss %.4f val AUC %.4f", label, epoch + 1, loss, val)
            progress.update(task, advance=1, description=f"{label} val AUC {val:.4f}")
            if val > best:
                best, result.best_epoch = val, epoch + 1
                best_state = copy.deepcopy((model.state_dict(), tower.state_dict() if tower else None))
            elif epoch + 1 - result.best_epoch >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state[0])
        if tower is not None and best_state[1] is not None:
            tower.load_state_dict(best_state[1])
    result.seconds = time.perf_counter() - start
    return result
