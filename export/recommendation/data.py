"""Real sequential-recommendation data sets and the leave-one-out protocol.

Both files keep each user's items in time order with ids starting at 1, so id 0 is free
for padding. The split is the one the published numbers use: the last item is the test
target, the second-to-last the validation target, the rest is training history.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

logger = logging.getLogger(__name__)

DatasetName = Literal["beauty", "games"]

NEGATIVE_SEED = 12345
"""Seed of the sampled-negative protocol (S3-Rec's ``generate_test.py`` uses the same)."""
NEGATIVES = {"beauty": 99, "games": 100}
"""Negatives per user: 99 in S3-Rec's Beauty protocol, 100 in SASRec's."""
DATASET_DIRS = {"beauty": "seqrec-amazon-beauty-s3rec", "games": "seqrec-amazon-games-sasrec"}
MIN_LENGTH = 3
"""Users need a training item, a validation item and a test item (SASRec skips the rest too)."""


def default_data_dir() -> Path:
    """``<repo>/../shared/data``: the read-only data folder beside the checkout."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass(frozen=True)
class SequenceDataset:
    """Users' time-ordered item sequences (ids 1..num_items; 0 is padding)."""

    name: str
    sequences: list[list[int]]
    num_items: int
    attributes: dict[int, list[int]] | None = None

    @property
    def num_users(self) -> int:
        return len(self.sequences)

    @property
    def num_interactions(self) -> int:
        return sum(len(s) for s in self.sequences)

    def train_sequences(self, through_validation: bool = False) -> list[list[int]]:
        """Histories up to (not including) the validation item; targets are their own shifts.

        ``through_validation`` keeps the validation item too (a refit once the epochs are
        chosen): the test item is still never seen.
        """
        cut = 1 if through_validation else 2
        return [s[:-cut] for s in self.sequences if len(s) >= cut + 2]

    def eval_cases(self, split: Literal["valid", "test"]) -> tuple[list[list[int]], np.ndarray]:
        """(history, target) per user: valid uses ``s[:-2] → s[-2]``, test ``s[:-1] → s[-1]``."""
        cut = 2 if split == "valid" else 1
        histories = [s[:-cut] for s in self.sequences]
        targets = np.array([s[-cut] for s in self.sequences], dtype=np.int64)
        return histories, targets


def _read_beauty(folder: Path) -> tuple[list[list[int]], dict[int, list[int]]]:
    with gzip.open(folder / "Beauty.txt.gz", "rt") as fh:
        sequences = [[int(tok) for tok in line.split()[1:]] for line in fh if line.strip()]
    with gzip.open(folder / "Beauty_item2attributes.json.gz", "rt") as fh:
        attributes = {int(k): list(v) for k, v in json.load(fh).items()}
    return sequences, attributes


def _read_games(folder: Path) -> list[list[int]]:
    by_user: dict[int, list[int]] = defaultdict(list)
    with gzip.open(folder / "Video.txt.gz", "rt") as fh:
        for line in fh:
            user, item = line.split()
            by_user[int(user)].append(int(item))
    return [by_user[u] for u in sorted(by_user)]


def load_dataset(name: DatasetName, data_dir: Path | None = None) -> SequenceDataset:
    """Read one of the real data sets from ``data_dir`` (default ``<repo>/../shared/data``)."""
    folder = (data_dir or default_data_dir()) / DATASET_DIRS[name]
    attributes = None
    if name == "beauty":
        sequences, attributes = _read_beauty(folder)
    else:
        sequences = _read_games(folder)
    num_items = max(max(s) for s in sequences)
    ds = SequenceDataset(name, [s for s in sequences if len(s) >= MIN_LENGTH], num_items, attributes)
    logger.info("%s: %d users, %d items, %d interactions", name, ds.num_users, num_items, ds.num_interactions)
    return ds


def sample_negatives(ds: SequenceDataset, count: int, seed: int = NEGATIVE_SEED) -> np.ndarray:
    """``count`` uniform negatives per user among items the user never interacted with.

    One generator seeded once and walked over users in file order, as S3-Rec's script does,
    so the sample is fixed for a given file.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((ds.num_users, count), dtype=np.int64)
    for u, seq in enumerate(ds.sequences):
        seen = set(seq)
        if ds.num_items - len(seen) < count:
            raise ValueError(f"user {u} leaves {ds.num_items - len(seen)} unseen items, fewer than {count}")
        chosen: list[int] = []
        picked: set[int] = set()
        while len(chosen) < count:
            for item in rng.integers(1, ds.num_items + 1, size=2 * count).tolist():
                if item not in seen and item not in picked:
                    picked.add(item)
                    chosen.append(item)
                    if len(chosen) == count:
                        break
        out[u] = chosen
    return out
