"""The CTR model: DCN-v2 over hashed sparse fields, plus an optional creative-text embedding.

The text embedding is an *input* of this graph, not computed inside it: the service
caches it per creative id and runs the text encoder only on cache misses.
Calibration (Platt scaling on the logit: ``sigmoid(a * logit + b)``) lives in buffers,
so the exported graph emits calibrated pCTR directly.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import torch
from torch import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CtrConfig:
    vocab_size: int
    n_fields: int
    embed_dim: int = 8
    cross_layers: int = 2
    """0 gives the "no crosses" ablation (deep part only)."""
    cross_rank: int = 16
    hidden: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    linear: bool = True
    """A first-order (wide) weight per feature id, added to the logit, so LR is a sub-model."""
    embed_init_std: float = 0.05
    text_dim: int = 0
    """Width of the cached creative-text embedding input; 0 means no text input."""

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["hidden"] = list(self.hidden)
        return data


class CrossLayer(nn.Module):
    """DCN-v2 low-rank cross: ``x_{l+1} = x0 * (U (V x_l) + b) + x_l``."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.v = nn.Linear(dim, rank, bias=False)
        self.u = nn.Linear(rank, dim)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x0 * self.u(self.v(x)) + x
        return out


class DcnV2(nn.Module):
    """Parallel DCN-v2: a cross network and an MLP over the same stacked embeddings."""

    def __init__(self, cfg: CtrConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        nn.init.normal_(self.embedding.weight, std=cfg.embed_init_std)
        self.wide = nn.Embedding(cfg.vocab_size, 1) if cfg.linear else None
        if self.wide is not None:
            nn.init.zeros_(self.wide.weight)
        self.text_proj = nn.Linear(cfg.text_dim, cfg.embed_dim) if cfg.text_dim else None
        width = cfg.embed_dim * (cfg.n_fields + (1 if cfg.text_dim else 0))
        self.cross = nn.ModuleList(CrossLayer(width, cfg.cross_rank) for _ in range(cfg.cross_layers))
        layers: list[nn.Module] = []
        prev = width
        for size in cfg.hidden:
            layers += [nn.Linear(prev, size), nn.ReLU(), nn.Dropout(cfg.dropout)]
            prev = size
        self.deep = nn.Sequential(*layers)
        self.head = nn.Linear(prev + (width if cfg.cross_layers else 0), 1)
        self.register_buffer("cal_a", torch.ones(()))
        self.register_buffer("cal_b", torch.zeros(()))

    def stack(self, sparse: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        parts = [self.embedding(sparse).flatten(1)]
        if self.text_proj is not None:
            if text is None:
                raise ValueError("this model needs a text embedding input")
            parts.append(self.text_proj(text))
        return torch.cat(parts, dim=1)

    def logit(self, sparse: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        x0 = self.stack(sparse, text)
        features = [self.deep(x0)]
        if len(self.cross):
            x = x0
            for layer in self.cross:
                x = layer(x0, x)
            features.append(x)
        logit: torch.Tensor = self.head(torch.cat(features, dim=1)).squeeze(1)
        if self.wide is not None:
            logit = logit + self.wide(sparse).sum(dim=(1, 2))
        return logit

    def init_bias(self, base_rate: float) -> None:
        """Start at the base rate's logit so early epochs do not spend themselves learning it."""
        with torch.no_grad():
            self.head.bias.fill_(float(torch.logit(torch.tensor(base_rate))))

    def forward(self, sparse: torch.Tensor, text: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(logit, calibrated pCTR)``, both ``[batch]``."""
        logit = self.logit(sparse, text)
        cal_a: torch.Tensor = self.cal_a  # type: ignore[assignment]
        cal_b: torch.Tensor = self.cal_b  # type: ignore[assignment]
        return logit, torch.sigmoid(cal_a * logit + cal_b)

    def set_calibration(self, a: float, b: float) -> None:
        if a <= 0:
            raise ValueError("a calibration slope <= 0 would invert the ranking")
        self.cal_a.fill_(a)  # type: ignore[operator]
        self.cal_b.fill_(b)  # type: ignore[operator]
