"""The exported fraud model: its ONNX contract, its feature-spec check, and its reason codes.

Reason codes are occlusion deltas: for each feature group of
:data:`services.fraud.features.REASON_GROUPS`, the group is reset to a typical legitimate
value (stored in the manifest) and the drop in log-odds is that group's contribution.
All groups of all explained rows go through ONE extra ONNX call per batch.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from services.fraud.features import CATEGORICAL_FEATURES, FEATURE_VERSION, NUMERIC_FEATURES, REASON_GROUPS
from shared.errors import ModelSpecMismatch
from shared.models.manifest import ModelManifest, TensorSpec
from shared.models.slot import LoadedModel

logger = logging.getLogger(__name__)

INPUTS = [
    TensorSpec(name="numeric", dtype="float32", shape=("batch", len(NUMERIC_FEATURES))),
    TensorSpec(name="categorical", dtype="int64", shape=("batch", len(CATEGORICAL_FEATURES))),
]
OUTPUTS = [TensorSpec(name="probability", dtype="float32", shape=("batch",))]


def feature_spec() -> dict[str, Any]:
    return {"version": FEATURE_VERSION, "numeric": list(NUMERIC_FEATURES), "categorical": list(CATEGORICAL_FEATURES)}


def check_feature_spec(manifest: ModelManifest) -> None:
    """Refuse a model trained on other features than :mod:`services.fraud.features` builds."""
    if manifest.feature_spec != feature_spec():
        raise ModelSpecMismatch(f"{manifest.name} {manifest.version}: feature spec differs from the scorer's")
    if "reason_baseline" not in manifest.preprocessing:
        raise ModelSpecMismatch(f"{manifest.name} {manifest.version}: manifest has no reason_baseline")


def _group_columns() -> list[tuple[str, list[int], list[int]]]:
    num = {n: i for i, n in enumerate(NUMERIC_FEATURES)}
    cat = {n: i for i, n in enumerate(CATEGORICAL_FEATURES)}
    return [
        (code, [num[f] for f in feats if f in num], [cat[f] for f in feats if f in cat])
        for code, feats in REASON_GROUPS.items()
    ]


GROUPS = _group_columns()


def probabilities(loaded: LoadedModel, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    out = loaded.model.run({"numeric": numeric, "categorical": categorical})["probability"]
    return np.asarray(out, dtype=np.float32).reshape(-1)


def reasons(
    loaded: LoadedModel,
    numeric: np.ndarray,
    categorical: np.ndarray,
    probability: np.ndarray,
    max_reasons: int,
    min_delta: float,
) -> list[tuple[str, ...]]:
    """Top reason codes per row: groups whose reset lowers the log-odds the most (by ``min_delta``)."""
    if len(numeric) == 0 or max_reasons == 0:
        return [() for _ in range(len(numeric))]
    base = loaded.manifest.preprocessing["reason_baseline"]
    base_num = np.asarray(base["numeric"], dtype=np.float32)
    base_cat = np.asarray(base["categorical"], dtype=np.int64)
    nums, cats = [], []
    for _, num_cols, cat_cols in GROUPS:
        n, c = numeric.copy(), categorical.copy()
        n[:, num_cols] = base_num[num_cols]
        c[:, cat_cols] = base_cat[cat_cols]
        nums.append(n)
        cats.append(c)
    reset = probabilities(loaded, np.concatenate(nums), np.concatenate(cats)).reshape(len(GROUPS), -1)
    # Log-odds, not probability: near p = 1 several redundant signals each move p by < 0.01
    # while still carrying the decision.
    delta = _logit(probability)[None, :] - _logit(reset)  # [groups, rows]
    return [_top(delta[:, i], max_reasons, min_delta) for i in range(len(numeric))]


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.asarray(np.log(q) - np.log1p(-q))


def _top(delta: np.ndarray, k: int, min_delta: float) -> tuple[str, ...]:
    order = np.argsort(-delta, kind="stable")[:k]
    return tuple(GROUPS[g][0] for g in order if delta[g] >= min_delta)

