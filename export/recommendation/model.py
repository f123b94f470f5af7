"""SASRec-style causal transformer over item ids, in plain torch so it exports cleanly.

The serving contract (what ONNX sees): ``item_ids [batch, seq]`` int64, left-padded with 0,
oldest item first; ``scores [batch, num_items + 1]`` float32, one logit per item id for the
next item after the last position. Column 0 is the padding id and always scores very low.
Positions are counted from the right end, so the newest item always has position
``max_len - 1`` whatever the padded length of the batch: training batches can be padded
only to their own longest sequence and serving batches to theirs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

logger = logging.getLogger(__name__)

PAD_SCORE = -1.0e4
"""Logit of the padding column; far below any real item so top-K never picks it."""


@dataclass(frozen=True)
class SASRecConfig:
    num_items: int
    max_len: int = 50
    dim: int = 64
    layers: int = 2
    heads: int = 1
    dropout: float = 0.5
    ffn_mult: int = 1
    num_attributes: int = 0
    """Item side features (brand, category ids ≥ 1); 0 = item ids only."""
    attrs_per_item: int = 0
    item_bias: bool = False
    """A learned per-item output bias (item popularity the dot product need not encode)."""

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


class Block(nn.Module):
    """Pre-norm self-attention + feed-forward, with explicit matmuls (portable to ONNX)."""

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.head_dim = cfg.dim // cfg.heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.ln1 = nn.LayerNorm(cfg.dim)
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.out = nn.Linear(cfg.dim, cfg.dim)
        self.ln2 = nn.LayerNorm(cfg.dim)
        self.ff1 = nn.Linear(cfg.dim, cfg.ffn_mult * cfg.dim)
        self.ff2 = nn.Linear(cfg.ffn_mult * cfg.dim, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, self.head_dim).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-1, -2)) * self.scale + bias
        att = self.drop(torch.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.drop(self.out(y))
        out: torch.Tensor = x + self.drop(self.ff2(self.drop(F.gelu(self.ff1(self.ln2(x))))))
        return out


class SASRec(nn.Module):
    """Causal next-item transformer; item embeddings are tied with the output layer."""

    pad_bias: torch.Tensor
    item_attrs: torch.Tensor

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(cfg.num_items + 1, cfg.dim, padding_idx=0)
        self.attr_emb = nn.Embedding(cfg.num_attributes + 1, cfg.dim, padding_idx=0) if cfg.num_attributes else None
        # Data, not weights: rebuilt by set_attributes() from the data set, so kept out of checkpoints.
        attrs = torch.zeros(cfg.num_items + 1, max(cfg.attrs_per_item, 1), dtype=torch.long)
        self.register_buffer("item_attrs", attrs, persistent=False)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        pad_bias = torch.zeros(cfg.num_items + 1)
        pad_bias[0] = PAD_SCORE
        self.register_buffer("pad_bias", pad_bias)
        self.item_bias = nn.Parameter(torch.zeros(cfg.num_items + 1)) if cfg.item_bias else None
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        if self.attr_emb is not None:
            nn.init.normal_(self.attr_emb.weight, std=0.02)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        state_dict.pop(prefix + "item_attrs", None)  # checkpoints from before it was non-persistent
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def set_attributes(self, attributes: dict[int, list[int]]) -> None:
        """Fill the item → attribute-ids table (ids ≥ 1; 0 pads); kept as a graph constant."""
        table = torch.zeros_like(self.item_attrs)
        for item, attrs in attributes.items():
            kept = attrs[: table.shape[1]]
            table[item, : len(kept)] = torch.tensor(kept, dtype=torch.long)
        self.item_attrs.copy_(table)

    def item_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """Item representation: its own embedding plus the mean of its attribute embeddings.

        Side features give rarely seen items a useful vector from their brand and category.
        """
        vectors: torch.Tensor = self.item_emb(ids)
        if self.attr_emb is None:
            return vectors
        attrs = self.item_attrs[ids]
        count = (attrs > 0).sum(-1, keepdim=True).clamp(min=1).to(vectors.dtype)
        mixed: torch.Tensor = vectors + self.attr_emb(attrs).sum(-2) / count
        return mixed

    def item_table(self) -> torch.Tensor:
        """Representations of every item id (row 0 = padding)."""
        if self.attr_emb is None:
            weight: torch.Tensor = self.item_emb.weight
            return weight
        return self.item_vectors(torch.arange(self.cfg.num_items + 1, device=self.item_emb.weight.device))

    def hidden(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Hidden state per position: ``[batch, seq, dim]``."""
        t = item_ids.shape[1]
        positions = torch.arange(t, device=item_ids.device) + (self.cfg.max_len - t)
        keep = (item_ids > 0).unsqueeze(-1).to(torch.float32)
        x = self.drop(self.item_vectors(item_ids) * math.sqrt(self.cfg.dim) + self.pos_emb(positions)) * keep
        bias = self._attention_bias(item_ids)
        for block in self.blocks:
            x = block(x, bias) * keep
        out: torch.Tensor = self.ln(x)
        return out

    @staticmethod
    def _attention_bias(item_ids: torch.Tensor) -> torch.Tensor:
        """Additive mask ``[batch, 1, seq, seq]``: causal, no padded keys, but always self.

        Letting a padded query see itself keeps every softmax row finite (no NaN).
        """
        t = item_ids.shape[1]
        idx = torch.arange(t, device=item_ids.device)
        causal = idx.unsqueeze(0) <= idx.unsqueeze(1)
        key_ok = (item_ids > 0).unsqueeze(1) | (idx.unsqueeze(0) == idx.unsqueeze(1)).unsqueeze(0)
        allowed = causal.unsqueeze(0) & key_ok
        return ((~allowed).to(torch.float32) * PAD_SCORE).unsqueeze(1)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Scores over every item id (column 0 = padding) for hidden states ``[..., dim]``."""
        out: torch.Tensor = h @ self.item_table().t() + self.pad_bias
        return out if self.item_bias is None else out + self.item_bias

    def output_bias(self, ids: torch.Tensor) -> torch.Tensor:
        """The learned bias of the given item ids (zeros without one), for sampled losses."""
        return torch.zeros(ids.shape) if self.item_bias is None else self.item_bias[ids]

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        """The serving graph: next-item scores after the last (newest) position."""
        return self.logits(self.hidden(item_ids)[:, -1, :])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
