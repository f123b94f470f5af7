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
CALL_US, ROW_US, POSITION_US = 80.0, 9.0, 2.2
"""CPU cost of the served v0001 graph on one thread: per call, per row, per padded position of a
row (measured: a row of 1 position 11 µs, of 10 30 µs, of 50 160 µs). What :func:`length_groups`
trades off: every row of a call is padded to the call's longest one."""


class GraphRunner(Protocol):
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def check_manifest(manifest: ModelManifest) -> None:
    """Refuse a version whose manifest lacks what tokenising and padding need."""
    missing = [k for k in REQUIRED_PREPROCESSING if k not in manifest.preprocessing]
    if missing:
        raise ModelSpecMismatch(f"{manifest.name} {manifest.version}: preprocessing lacks {missing}")


class OnnxRanker:
    """Scores token sequences with one graph call per chunk of ``max_batch`` rows (:meth:`top`
    with ``by_length``: per group of rows of similar lengths, see :func:`length_groups`)."""

    def __init__(self, runner: GraphRunner, max_len: int, max_batch: int = 1024, by_length: bool = False) -> None:
        self.runner = runner
        self.max_len = max_len
        self.max_batch = max_batch
        self.by_length = by_length

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
        head: only ``allowed`` tokens, none of a row's ``excluded`` tokens (``-inf`` when too few).

        With ``by_length``, rows are scored in groups of similar lengths: a batch of mostly short
        histories and a few long ones no longer pads all of them to the longest (the model counts
        positions from the right, so a row's result does not depend on its padding, up to float
        rounding of about 1e-6, as between any two batch compositions)."""
        if not sequences:
            return np.zeros((0, 0), dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        np.clip(lengths, 1, self.max_len, out=lengths)
        bounds = length_groups(np.bincount(lengths).tolist()) if self.by_length else [self.max_len]
        if len(bounds) == 1:
            return self._top(sequences, allowed, excluded)
        items: np.ndarray | None = None
        scores: np.ndarray | None = None
        low = 0
        for high in bounds:
            rows = np.flatnonzero((lengths > low) & (lengths <= high))
            low = high
            picked = rows.tolist()
            part_items, part_scores = self._top([sequences[i] for i in picked], allowed, [excluded[i] for i in picked])
            if items is None or scores is None:
                items = np.empty((len(sequences), part_items.shape[1]), dtype=part_items.dtype)
                scores = np.empty((len(sequences), part_scores.shape[1]), dtype=part_scores.dtype)
            items[rows], scores[rows] = part_items, part_scores
        assert items is not None and scores is not None
        return items, scores

    def _top(self, sequences: Sequence[Sequence[int]], allowed: np.ndarray,
             excluded: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
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


def length_groups(rows_of_length: Sequence[int]) -> list[int]:
    """The longest length of each group, shortest group first, that scores rows in the least time.

    ``rows_of_length[n]``: how many rows have ``n`` positions. Groups are runs of lengths; each costs
    a call, plus each row's cost at the group's longest length (``CALL_US``, ``ROW_US``,
    ``POSITION_US``). Exact, by dynamic programming over the distinct lengths (at most ``max_len``).
    """
    lengths = [n for n, rows in enumerate(rows_of_length) if rows]
    if len(lengths) <= 1:
        return lengths
    before = [0]  # rows shorter than lengths[j], for j = 0..
    for n in lengths:
        before.append(before[-1] + rows_of_length[n])
    best, cut = [0.0], [0]  # best[j]: least cost of the rows of lengths[:j], its last group starting at cut[j]
    for j in range(1, len(lengths) + 1):
        row = ROW_US + POSITION_US * lengths[j - 1]
        cost, start = min((best[i] + CALL_US + (before[j] - before[i]) * row, i) for i in range(j))
        best.append(cost)
        cut.append(start)
    bounds, j = [], len(lengths)
    while j:
        bounds.append(lengths[j - 1])
        j = cut[j]
    return bounds[::-1]


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` columns per row, best first, by ``argpartition`` (no full sort of all items).

    Returns ``(columns, values)``, each ``[rows, k]``; excluded items should carry ``-inf``. The
    scorer takes its top K in the graph (:mod:`services.recommendation.head`); this is what the tests
    hold that head to. Among equal values the order here is unspecified, the head's lower token first.
    """
    k = min(k, scores.shape[1])
    part = np.argpartition(scores, scores.shape[1] - k, axis=1)[:, -k:]
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)
