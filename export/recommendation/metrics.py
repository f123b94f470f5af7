"""Ranking metrics of the leave-one-out protocol: HR@k, NDCG@k and MRR from target ranks."""

from __future__ import annotations

import numpy as np

CUTOFFS = (1, 5, 10)


def ranks_full(scores: np.ndarray, targets: np.ndarray, histories: list[list[int]]) -> np.ndarray:
    """0-based rank of each target among all items, history items excluded (S3-Rec's rule).

    ``scores`` is ``[batch, num_items + 1]`` (column 0 = padding, never a candidate). Ties count
    against the target, so a constant model scores zero rather than perfectly.
    """
    scores = scores.astype(np.float32, copy=True)
    scores[:, 0] = -np.inf
    for row, hist in enumerate(histories):
        seen = [i for i in hist if i != targets[row]]
        scores[row, seen] = -np.inf
    target_scores = scores[np.arange(len(targets)), targets]
    return np.asarray((scores >= target_scores[:, None]).sum(axis=1) - 1, dtype=np.int64)


def ranks_sampled(scores: np.ndarray, targets: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """0-based rank of each target among itself and its sampled negatives."""
    target_scores = scores[np.arange(len(targets)), targets]
    negative_scores = np.take_along_axis(scores, negatives, axis=1)
    return np.asarray((negative_scores >= target_scores[:, None]).sum(axis=1), dtype=np.int64)


def summarize(ranks: np.ndarray) -> dict[str, float]:
    """HR@1/5/10, NDCG@5/10 and MRR (means over users), rounded for reports."""
    out: dict[str, float] = {}
    for k in CUTOFFS:
        out[f"HR@{k}"] = float(np.mean(ranks < k))
    for k in (5, 10):
        out[f"NDCG@{k}"] = float(np.mean(np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)))
    out["MRR"] = float(np.mean(1.0 / (ranks + 1.0)))
    return {k: round(v, 4) for k, v in out.items()}
