"""A bounded LRU cache of creative-text embeddings, keyed by creative id."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

Encoder = Callable[[Sequence[str]], np.ndarray]
"""Titles -> ``float32 [n, dim]`` embeddings (the text-encoder graph)."""


class EmbeddingCache:
    """Creative id -> embedding row, evicting the least recently used beyond ``capacity``.

    A creative's title is assumed fixed for its id (ad servers version creatives by id);
    the cache is cleared whenever the text encoder changes.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self._rows: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        self._rows.clear()

    def lookup(self, ids: Sequence[str], titles: Sequence[str], encode: Encoder) -> np.ndarray:
        """Embeddings for every id, in order; ``encode`` runs once, on the distinct misses only."""
        missing: dict[str, str] = {}
        for cid, title in zip(ids, titles, strict=True):
            if cid in self._rows:
                self._rows.move_to_end(cid)
            else:
                missing.setdefault(cid, title)
        self.misses += sum(1 for cid in ids if cid in missing)
        self.hits += len(ids) - sum(1 for cid in ids if cid in missing)
        fresh: dict[str, np.ndarray] = {}
        if missing:
            vectors = encode(list(missing.values()))
            fresh = dict(zip(missing, vectors, strict=True))
        out = np.stack([fresh[cid] if cid in fresh else self._rows[cid] for cid in ids])
        for cid, vector in fresh.items():
            self._store(cid, vector)
        return out.astype(np.float32, copy=False)

    def _store(self, cid: str, vector: np.ndarray) -> None:
        if self.capacity == 0:
            return
        self._rows[cid] = vector
        self._rows.move_to_end(cid)
        while len(self._rows) > self.capacity:
            self._rows.popitem(last=False)
