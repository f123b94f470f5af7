"""Leave-one-out evaluation under both protocols, through the serving preprocessing path.

A *predictor* maps item-id sequences to scores over all items. The ONNX predictor is the
service's own :class:`services.recommendation.ranker.OnnxRanker`, and every history goes
through the same :mod:`services.recommendation.features` calls the scorer makes, so the
numbers reported are those of the served model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch

from export.recommendation.data import SequenceDataset
from export.recommendation.metrics import ranks_full, ranks_sampled, summarize
from export.recommendation.model import SASRec
from services.recommendation.features import EVENT_WEIGHTS, history_from_items, pad_left, sequence_of

logger = logging.getLogger(__name__)

Predictor = Callable[[Sequence[Sequence[int]]], np.ndarray]


def torch_predictor(model: SASRec) -> Predictor:
    """Scores from the torch model, with the serving padding (for validation during training)."""

    def predict(sequences: Sequence[Sequence[int]]) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            ids = torch.from_numpy(pad_left(sequences, model.cfg.max_len))
            return np.asarray(model(ids).numpy())

    return predict


def serving_sequences(histories: Sequence[Sequence[int]], capacity: int) -> list[list[int]]:
    """Each history replayed as purchase events into the bounded state the service keeps."""
    weight = EVENT_WEIGHTS["purchase"]
    return [sequence_of(history_from_items(h, weight, capacity)) for h in histories]


def evaluate(
    predict: Predictor,
    ds: SequenceDataset,
    split: Literal["valid", "test"],
    negatives: np.ndarray | None,
    capacity: int,
    users: np.ndarray | None = None,
    batch_size: int = 512,
) -> dict[str, dict[str, float]]:
    """Metrics under full ranking and, when ``negatives`` is given, sampled negatives.

    Users whose history before the target is empty are skipped (nothing to condition on).
    """
    histories, targets = ds.eval_cases(split)
    idx = np.arange(ds.num_users) if users is None else users
    idx = np.array([u for u in idx if histories[u]], dtype=np.int64)
    full, sampled = [], []
    for start in range(0, len(idx), batch_size):
        rows = idx[start : start + batch_size]
        hist = [histories[u] for u in rows]
        scores = predict(serving_sequences(hist, capacity))
        full.append(ranks_full(scores, targets[rows], hist))
        if negatives is not None:
            sampled.append(ranks_sampled(scores, targets[rows], negatives[rows]))
    out = {"full": summarize(np.concatenate(full)), "users": {"count": float(len(idx))}}
    if negatives is not None:
        out["sampled"] = summarize(np.concatenate(sampled))
    return out
