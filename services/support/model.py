"""The support model's contract, its manifest check, and batched inference over length groups.

A version is a text classifier: ``input_ids`` and ``attention_mask`` (int64 ``[batch, seq]``) in,
``probs`` (float32 ``[batch, labels]``, softmax over the intents) out, beside ``logits``. Its
manifest names the intents (``preprocessing.labels``, in output order), the tokenizer's truncation
length (``max_length``), the default escalation threshold, and the tokenizer file as the asset
``tokenizer``; a version without them is refused before it serves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from services.support.tokens import Tokens
from shared.errors import ModelSpecMismatch
from shared.models.manifest import ModelManifest, TensorSpec

logger = logging.getLogger(__name__)

INPUTS = [TensorSpec(name=n, dtype="int64", shape=("batch", "seq")) for n in ("input_ids", "attention_mask")]
OUTPUTS = [TensorSpec(name="probs", dtype="float32", shape=("batch", "labels"))]
REQUIRED_PREPROCESSING = ("labels", "max_length", "escalation_threshold")
TOKENIZER_ASSET = "tokenizer"


class GraphRunner(Protocol):
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def check_manifest(manifest: ModelManifest) -> None:
    """Refuse a version whose manifest lacks what tokenising, naming and escalating need."""
    what = f"{manifest.name} {manifest.version}"
    pre = manifest.preprocessing
    missing = [k for k in REQUIRED_PREPROCESSING if k not in pre]
    if missing:
        raise ModelSpecMismatch(f"{what}: preprocessing lacks {missing}")
    if TOKENIZER_ASSET not in manifest.assets:
        raise ModelSpecMismatch(f"{what}: no {TOKENIZER_ASSET!r} asset (has {sorted(manifest.assets) or 'none'})")
    labels = pre["labels"]
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) and 0 < len(x) <= 64 for x in labels)):
        raise ModelSpecMismatch(f"{what}: preprocessing.labels must be a list of 1-64 character names")
    probs = next((t for t in manifest.outputs if t.name == "probs"), None)
    width = probs.shape[-1] if probs is not None and probs.shape else None
    if isinstance(width, int) and width != len(labels):
        raise ModelSpecMismatch(f"{what}: {len(labels)} labels for {width} output columns")
    if not (isinstance(pre["max_length"], int) and pre["max_length"] >= 2):
        raise ModelSpecMismatch(f"{what}: preprocessing.max_length must be an integer >= 2")


def probabilities(runner: GraphRunner, tokens: Tokens, groups: Sequence[np.ndarray], pad_id: int,
                  labels: int) -> np.ndarray:
    """``[rows, labels]`` float32 probabilities: one graph call per group of rows, put back in order."""
    out = np.empty((len(tokens.lengths), labels), dtype=np.float32)
    for rows in groups:
        ids, mask = tokens.padded(rows, pad_id)
        probs = np.asarray(runner.run({"input_ids": ids, "attention_mask": mask})["probs"], dtype=np.float32)
        if probs.shape != (len(rows), labels):
            raise ModelSpecMismatch(f"the graph returned probs of shape {probs.shape}, expected {(len(rows), labels)}")
        out[rows] = probs
    return out


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, values)`` of each row's ``k`` most probable labels, best first (lower index on ties)."""
    k = min(k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(probs, order, axis=1)
