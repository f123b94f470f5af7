"""BANKING77 and a shop's own labelled messages, as lists of texts and label indices.

BANKING77 (``<data_dir>/intent-banking77-polyai``, CC-BY-4.0, PolyAI; Casanueva et al. 2020)
is read from its CSVs (``text,category``); the label order is ``categories.json``'s, which is
the output order of the exported graph. The validation split is carved out of the official
training set (stratified, fixed seed), so the test set is used for nothing but the final
figures. A shop's own messages are a CSV with a ``text`` and a ``label`` column.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BANKING77 = "intent-banking77-polyai"
VALID_FRACTION = 0.1
SPLIT_SEED = 20


@dataclass(frozen=True)
class Split:
    """Messages and their label indices (into the label list that came with them)."""

    texts: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, idx: Sequence[int] | np.ndarray) -> Split:
        return Split([self.texts[i] for i in idx], self.labels[np.asarray(idx, dtype=np.int64)])


def read_csv(path: Path, text_col: str, label_col: str) -> tuple[list[str], list[str]]:
    """Texts and label names of a CSV with a header row."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and (text_col not in rows[0] or label_col not in rows[0]):
        raise ValueError(f"{path}: needs columns {text_col!r} and {label_col!r}, has {sorted(rows[0])}")
    return [r[text_col] for r in rows], [r[label_col] for r in rows]


def encode_labels(names: Sequence[str], labels: Sequence[str], path: Path) -> np.ndarray:
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise ValueError(f"{path}: labels not in the label list: {unknown[:5]}")
    return np.array([index[n] for n in names], dtype=np.int64)


def banking77_labels(data_dir: Path) -> list[str]:
    labels: list[str] = json.loads((data_dir / BANKING77 / "categories.json").read_text(encoding="utf-8"))
    return labels


def banking77(data_dir: Path, part: str) -> Split:
    """``part`` is ``train`` or ``test`` (the official split: 10,003 and 3,080 messages)."""
    path = data_dir / BANKING77 / f"{part}.csv"
    texts, names = read_csv(path, "text", "category")
    return Split(texts, encode_labels(names, banking77_labels(data_dir), path))


def shop_messages(path: Path, labels: list[str]) -> tuple[Split, list[str]]:
    """A shop's ``text,label`` CSV; labels not in ``labels`` are appended (new output rows)."""
    texts, names = read_csv(path, "text", "label")
    extended = labels + sorted(set(names) - set(labels))
    return Split(texts, encode_labels(names, extended, path)), extended


def stratified_split(split: Split, fraction: float = VALID_FRACTION, seed: int = SPLIT_SEED) -> tuple[Split, Split]:
    """(train, validation): ``fraction`` of each label's messages (at least one) held out."""
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for label in np.unique(split.labels):
        idx = rng.permutation(np.flatnonzero(split.labels == label))
        if len(idx) > 1:
            held.extend(idx[: max(1, round(fraction * len(idx)))].tolist())
    mask = np.zeros(len(split), dtype=bool)
    mask[held] = True
    return split.take(np.flatnonzero(~mask)), split.take(np.flatnonzero(mask))


def few_shot(split: Split, shots: int, seed: int = 0) -> Split:
    """``shots`` messages per label, drawn with ``seed`` (all of a label's if it has fewer)."""
    rng = np.random.default_rng(seed)
    idx = [rng.permutation(np.flatnonzero(split.labels == label))[:shots] for label in np.unique(split.labels)]
    return split.take(np.sort(np.concatenate(idx)))


def encode_split(path: Path, labels: list[str]) -> Split:
    """A ``text,label`` CSV whose labels must all be in ``labels``."""
    texts, names = read_csv(path, "text", "label")
    return Split(texts, encode_labels(names, labels, path))
