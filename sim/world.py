"""The simulated shop's world: users with latent tastes over a catalogue, built from one seed.

Everything is deterministic for ``WorldConfig.seed``. Each stream draws from its own
generator (:meth:`World.rng`), derived from the seed and the stream's name with a stable
hash, so streams do not depend on each other or on the order they are consumed in.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from sim.catalogue import CATEGORIES, CATEGORY_NAMES, Catalogue, build_catalogue

logger = logging.getLogger(__name__)

EPOCH_MS = 1_704_067_200_000
"""Simulated time starts at 2024-01-01T00:00:00Z."""
DAY_MS = 86_400_000

SEGMENT_OF_CATEGORY: dict[str, str] = {
    "skincare": "beauty", "haircare": "beauty", "makeup": "beauty", "fragrance": "beauty",
    "electronics": "tech", "phones": "tech", "computers": "tech", "gaming": "gamer",
    "books": "reader", "toys": "parent", "grocery": "foodie", "coffee": "foodie",
    "sports": "active", "outdoor": "active", "home": "homebody", "kitchen": "homebody",
}  # fmt: skip
SEGMENTS: tuple[str, ...] = tuple(sorted(set(SEGMENT_OF_CATEGORY.values())))


def stable_seed(*parts: str | int) -> int:
    """A 32-bit seed from strings/ints with CRC32 (never Python's salted ``hash()``)."""
    return zlib.crc32("/".join(str(p) for p in parts).encode())


@dataclass(frozen=True, slots=True)
class WorldConfig:
    seed: int = 7
    n_users: int = 20_000
    n_items: int = 5_000
    dim: int = 16
    taste_sharpness: float = 2.5
    """Inverse temperature of P(category | user): higher means more focused users."""
    zipf_a: float = 1.1


@dataclass(frozen=True)
class World:
    """Users, their tastes and the catalogue. Build it with :meth:`build`."""

    config: WorldConfig
    catalogue: Catalogue
    category_vectors: NDArray[np.float64]
    user_taste: NDArray[np.float64]
    """Latent taste vectors, shape (n_users, dim)."""
    user_activity: NDArray[np.float64]
    """Relative activity weight of each user (heavy-tailed), sums to 1."""
    _cache: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, config: WorldConfig | None = None) -> World:
        cfg = config or WorldConfig()
        rng = np.random.default_rng(stable_seed(cfg.seed, "world"))
        n_cat = len(CATEGORIES)
        cat_vec = rng.normal(0.0, 1.0, (n_cat, cfg.dim))
        cat_vec /= np.linalg.norm(cat_vec, axis=1, keepdims=True)
        catalogue = build_catalogue(rng, cfg.n_items, cat_vec, cfg.zipf_a)
        # Each user loves 1-3 categories: taste = weighted mix of their category directions.
        n_fav = rng.integers(1, 4, cfg.n_users)
        weights = np.zeros((cfg.n_users, n_cat))
        for k in range(3):
            fav = rng.integers(0, n_cat, cfg.n_users)
            w = rng.uniform(0.3, 1.0, cfg.n_users) * (k < n_fav) * (1.0 if k == 0 else 0.6)
            weights[np.arange(cfg.n_users), fav] += w
        taste = weights @ cat_vec + rng.normal(0.0, 0.15, (cfg.n_users, cfg.dim))
        activity = rng.lognormal(0.0, 1.0, cfg.n_users)
        logger.debug("world %s built", cfg)
        return cls(cfg, catalogue, cat_vec, taste, activity / activity.sum())

    def rng(self, stream: str, *extra: str | int) -> np.random.Generator:
        """An independent generator for one stream of this world."""
        return np.random.default_rng([self.config.seed, stable_seed(stream, *extra)])

    @property
    def n_users(self) -> int:
        return int(self.user_taste.shape[0])

    @cached_property
    def category_probs(self) -> NDArray[np.float64]:
        """True P(category | user) = softmax(sharpness * taste . category), shape (n_users, n_cat)."""
        logits = self.config.taste_sharpness * (self.user_taste @ self.category_vectors.T)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]

    @cached_property
    def user_segment(self) -> NDArray[np.int64]:
        """Index into :data:`SEGMENTS` of each user's segment (from their top category)."""
        top = self.category_probs.argmax(axis=1)
        seg_of_cat = np.array([SEGMENTS.index(SEGMENT_OF_CATEGORY[c]) for c in CATEGORY_NAMES])
        return seg_of_cat[top]  # type: ignore[no-any-return]

    @cached_property
    def user_ids(self) -> list[str]:
        """``user_ids[i]`` is the id string of user ``i`` (precomputed: generators are hot loops)."""
        return [self.user_id(i) for i in range(self.n_users)]

    @staticmethod
    def user_id(index: int) -> str:
        return f"u{index:07d}"

    @staticmethod
    def user_index(user_id: str) -> int:
        return int(user_id[1:])
