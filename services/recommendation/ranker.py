"""The exported sequence model: its ONNX contract, its manifest check, and batched scoring.

Training-time evaluation uses :class:`OnnxRanker` too, so the metrics in the docs are the
served graph's metrics through the served preprocessing. The scorer serves the same graph with
the top-K head of :mod:`services.recommendation.head` appended, through :meth:`OnnxRanker.top`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from services.recommendation.features import pad_left
from shared.errors import ModelSpecMismatch
from shared.models.manifest import ModelManifest, TensorSpec

logger = logging.getLogger(__name__)

INPUTS = [TensorSpec(name="item_ids", dtype="int64", shape=("batch", "seq"))]
"""Item tokens, oldest first, left-padded with 0 (token = item id + ``item_id_offset``)."""
OUTPUTS = [TensorSpec(name="scores", dtype="float32", shape=("batch", "items"))]
"""One logit per token for the next item; column 0 (padding) is always far below the rest."""
REQUIRED_PREPROCESSING = ("max_len", "num_items", "item_id_offset")


class GraphRunner(Protocol):
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def check_manifest(manifest: ModelManifest) -> None:
    """Refuse a version whose manifest lacks what tokenising and padding need."""
    missing = [k for k in REQUIRED_PREPROCESSING if k not in manifest.preprocessing]
    if missing:
        raise ModelSpecMismatch(f"{manifest.name} {manifest.version}: preprocessing lacks {missing}")


class OnnxRanker:
    """Scores token sequences with one graph call per chunk of ``max_batch`` rows."""

    def __init__(self, runner: GraphRunner, max_len: int, max_batch: int = 1024) -> None:
        self.runner = runner
        self.max_len = max_len
        self.max_batch = max_batch

    def scores(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """``[len(sequences), num_items + 1]`` float32 logits, one row per sequence."""
        parts = []
        for start in range(0, len(sequences), self.max_batch):
            ids = pad_left(sequences[start : start + self.max_batch], self.max_len)
            parts.append(self.runner.run({"item_ids": ids})["scores"])
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    __call__ = scores

    def top(self, sequences: Sequence[Sequence[int]], allowed: np.ndarray,
            excluded: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """``(items, scores)``, each ``[len(sequences), K]``, best first, from a graph with the top-K
        head: only ``allowed`` tokens, none of a row's ``excluded`` tokens (``-inf`` when too few)."""
        if not sequences:
            return np.zeros((0, 0), dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        items, scores = [], []
        for start in range(0, len(sequences), self.max_batch):
            end = start + self.max_batch
            out = self.runner.run({"item_ids": pad_left(sequences[start:end], self.max_len), "allowed": allowed,
                                   "excluded": pad_left(excluded[start:end], len(allowed))})
            items.append(out["top_items"])
            scores.append(out["top_scores"])
        if len(items) == 1:
            return items[0], scores[0]
        return np.concatenate(items), np.concatenate(scores)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` columns per row, best first, by ``argpartition`` (no full sort of all items).

    Returns ``(columns, values)``, each ``[rows, k]``; excluded items should carry ``-inf``.
    """
    k = min(k, scores.shape[1])
    part = np.argpartition(scores, scores.shape[1] - k, axis=1)[:, -k:]
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)
