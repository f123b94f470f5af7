"""What the scorer knows about items: id ↔ token, categories, popularity, business filters.

All of it comes from the model manifest's ``preprocessing`` (written by the export recipe from
the training data), so a model version and its catalogue always change together:

* ``num_items``, ``item_id_offset``: token = item id + offset, valid tokens 1..num_items;
* ``categories`` (names) and ``item_category`` (category index per token, -1 unknown);
* ``popular``: category name → item ids, most popular first (``"*"`` = all categories);
* ``repeat_purchase_categories``: categories whose bought items may be recommended again.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

ALL = "*"


@dataclass(frozen=True)
class BusinessFilters:
    """Items that must never be recommended right now (from settings or the config topic)."""

    out_of_stock: frozenset[int] = frozenset()
    blocked_categories: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None, fallback: BusinessFilters) -> BusinessFilters:
        """``{"out_of_stock": [ids], "blocked_categories": [names]}``; absent keys keep ``fallback``."""
        if not value:
            return fallback
        oos = value.get("out_of_stock", fallback.out_of_stock)
        blocked = value.get("blocked_categories", fallback.blocked_categories)
        return cls(frozenset(int(i) for i in oos), frozenset(str(c) for c in blocked))


class ItemCatalog:
    """Item metadata of one model version."""

    def __init__(self, preprocessing: Mapping[str, Any]) -> None:
        self.num_items = int(preprocessing["num_items"])
        self.offset = int(preprocessing["item_id_offset"])
        self.categories: list[str] = list(preprocessing.get("categories", []))
        cats = preprocessing.get("item_category") or [-1] * (self.num_items + 1)
        self.item_category = np.asarray(cats, dtype=np.int64)
        self.popular: dict[str, list[int]] = {k: list(v) for k, v in preprocessing.get("popular", {}).items()}
        self.repeat_categories = frozenset(preprocessing.get("repeat_purchase_categories", []))
        self._allowed_cache: tuple[BusinessFilters, np.ndarray] | None = None

    def token(self, item_id: int) -> int | None:
        """The model token of an item id, or ``None`` when the model does not know it."""
        tok = item_id + self.offset
        return tok if 1 <= tok <= self.num_items else None

    def tokens(self, item_ids: Iterable[int]) -> list[int]:
        """The tokens of the known items among ``item_ids`` (:meth:`token` inlined: once per history item)."""
        offset, last = self.offset, self.num_items
        return [tok for i in item_ids if 1 <= (tok := i + offset) <= last]

    def item_id(self, token: int) -> int:
        return token - self.offset

    def category_of(self, item_id: int) -> str | None:
        tok = self.token(item_id)
        idx = int(self.item_category[tok]) if tok is not None else -1
        return self.categories[idx] if 0 <= idx < len(self.categories) else None

    def allowed(self, filters: BusinessFilters) -> np.ndarray:
        """Boolean ``[num_items + 1]`` mask of tokens that pass the filters (cached per filters)."""
        if self._allowed_cache is not None and self._allowed_cache[0] == filters:
            return self._allowed_cache[1]
        mask = np.ones(self.num_items + 1, dtype=bool)
        mask[0] = False
        mask[self.tokens(filters.out_of_stock)] = False
        for name in filters.blocked_categories & set(self.categories):
            mask[self.item_category == self.categories.index(name)] = False
        self._allowed_cache = (filters, mask)
        return mask

    def repeatable(self, item_id: int, extra_categories: Collection[str] = ()) -> bool:
        """Whether a bought item may be recommended again (repeat-purchase category)."""
        cat = self.category_of(item_id)
        return cat is not None and (cat in self.repeat_categories or cat in extra_categories)

    def popular_in(self, category: str | None, k: int, allowed: np.ndarray, exclude: Collection[int]) -> list[int]:
        """The ``k`` most popular allowed items of ``category``, topped up from all categories."""
        ranked = itertools.chain(self.popular.get(category or ALL, []), self.popular.get(ALL, []))
        out: list[int] = []
        for item in ranked:
            tok = self.token(item)
            if tok is not None and allowed[tok] and item not in exclude and item not in out:
                out.append(item)
                if len(out) == k:
                    break
        return out
