"""A bounded LRU cache of creative-text embeddings, keyed by creative id."""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from itertools import repeat

import numpy as np

logger = logging.getLogger(__name__)

Encoder = Callable[[Sequence[str]], np.ndarray]
"""Titles -> ``float32 [n, dim]`` embeddings (the text-encoder graph)."""


class EmbeddingCache:
    """Creative id -> embedding row, evicting the least recently used beyond ``capacity``.

    A creative's title is assumed fixed for its id (ad servers version creatives by id);
    the cache is cleared whenever the text encoder changes. The rows live in one growing
    ``float32`` table, so a batch's embeddings are gathered with one index instead of a copy
    per candidate; the LRU order is an ``OrderedDict`` of id -> table row.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self._slots: OrderedDict[str, int] = OrderedDict()
        self._table = np.empty((0, 0), dtype=np.float32)
        self._free: list[int] = []
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._slots)

    def clear(self) -> None:
        self._slots.clear()
        self._table = np.empty((0, 0), dtype=np.float32)
        self._free.clear()

    def lookup(self, ids: Sequence[str], titles: Sequence[str], encode: Encoder) -> np.ndarray:
        """Embeddings for every id, in order; ``encode`` runs once, on the distinct misses only.

        Recency is as if each id were touched in turn: hits by their last use in ``ids``, then
        the misses, stored in order of first use.
        """
        distinct = list(dict.fromkeys(ids))
        position = {cid: i for i, cid in enumerate(distinct)}
        inverse = np.fromiter(map(position.__getitem__, ids), dtype=np.int64, count=len(ids))
        slots = np.fromiter(map(self._slots.get, distinct, repeat(-1)), dtype=np.int64, count=len(distinct))
        hit = slots >= 0
        missed = int((~hit[inverse]).sum())
        self.misses += missed
        self.hits += len(ids) - missed
        rows = np.empty((len(distinct), self._table.shape[1]), dtype=np.float32)
        if missed:
            first_title = dict(zip(reversed(ids), reversed(titles), strict=True))
            missing = [cid for cid, h in zip(distinct, hit.tolist(), strict=True) if not h]
            fresh = np.asarray(encode([first_title[cid] for cid in missing]), dtype=np.float32)
            if missed == len(ids):
                rows = fresh
            else:
                rows[~hit] = fresh
        if missed < len(ids):
            rows[hit] = self._table[slots[hit]]
            # Hits become the most recent in order of their last use (a deque drains the map in C).
            last_used = reversed(list(dict.fromkeys(reversed(ids))))
            deque(map(self._slots.move_to_end, filter(self._slots.__contains__, last_used)), maxlen=0)
        out = rows[inverse]
        if missed:
            self._store(missing, fresh)
        return out

    def _store(self, ids: list[str], vectors: np.ndarray) -> None:
        if self.capacity == 0:
            return
        for cid, vector in zip(ids, vectors, strict=True):
            slot = self._free.pop() if self._free else self._grow(vectors.shape[1])
            self._table[slot] = vector
            self._slots[cid] = slot
            while len(self._slots) > self.capacity:
                self._free.append(self._slots.popitem(last=False)[1])

    def _grow(self, dim: int) -> int:
        """A new table row (the table doubles, up to ``capacity`` + 1 rows)."""
        used = len(self._slots)
        if used >= self._table.shape[0]:
            size = min(max(2 * self._table.shape[0], 1024), self.capacity + 1)
            table = np.empty((size, dim), dtype=np.float32)
            if used:
                table[:used] = self._table[:used]
            self._table = table
        return used
