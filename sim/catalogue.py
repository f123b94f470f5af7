"""The simulated catalogue: categories, brands, prices, Zipf popularity and text titles.

Titles are built from per-category word lists ("Glow Serum Vitamin C 30ml" in ``skincare``) so
that text models have real signal: the words of a title identify its category, and (in
:mod:`sim.ads`) some words carry a hidden effect on click-through.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CategorySpec:
    name: str
    nouns: tuple[str, ...]
    variants: tuple[str, ...]
    sizes: tuple[str, ...]
    price_range: tuple[float, float]
    repeat_purchase: bool
    """Consumables people buy again (recommenders may re-suggest purchased items)."""
    elasticity: float
    """Mean own-price elasticity of the category's SKUs (see :mod:`sim.pricing`)."""


CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec("skincare", ("Serum", "Moisturiser", "Cleanser", "Toner", "Eye Cream", "Face Mask"),
                 ("Vitamin C", "Hyaluronic", "Retinol", "Niacinamide", "Aloe", "Rose"),
                 ("30ml", "50ml", "100ml", "200ml"), (6.0, 60.0), True, -2.2),
    CategorySpec("haircare", ("Shampoo", "Conditioner", "Hair Oil", "Hair Mask", "Styling Gel"),
                 ("Argan", "Keratin", "Coconut", "Tea Tree", "Biotin"),
                 ("250ml", "400ml", "500ml", "1l"), (4.0, 30.0), True, -2.6),
    CategorySpec("makeup", ("Lipstick", "Mascara", "Foundation", "Eyeliner", "Blush", "Concealer"),
                 ("Matte", "Velvet", "Waterproof", "Nude", "Ruby", "Glow"),
                 ("3g", "5ml", "10ml", "30ml"), (5.0, 45.0), False, -2.0),
    CategorySpec("fragrance", ("Eau de Parfum", "Eau de Toilette", "Body Mist", "Cologne"),
                 ("Amber", "Citrus", "Oud", "Jasmine", "Vanilla", "Cedar"),
                 ("30ml", "50ml", "100ml"), (15.0, 120.0), False, -1.6),
    CategorySpec("electronics", ("Headphones", "Speaker", "Charger", "Power Bank", "Smart Watch"),
                 ("Wireless", "Noise Cancelling", "Fast Charge", "Bluetooth", "Waterproof"),
                 ("Black", "White", "Silver", "Blue"), (15.0, 300.0), False, -1.8),
    CategorySpec("phones", ("Phone Case", "Screen Protector", "Phone", "Car Mount", "Cable"),
                 ("Slim", "Rugged", "Clear", "Magnetic", "USB-C"),
                 ("64GB", "128GB", "1m", "2m"), (5.0, 900.0), False, -1.9),
    CategorySpec("computers", ("Laptop", "Monitor", "Keyboard", "Mouse", "SSD", "Webcam"),
                 ("Gaming", "Ergonomic", "Mechanical", "4K", "Portable", "Pro"),
                 ("14in", "15in", "27in", "1TB", "512GB"), (20.0, 1500.0), False, -1.7),
    CategorySpec("gaming", ("Controller", "Headset", "Game", "Gaming Chair", "Console"),
                 ("RGB", "Wireless", "Deluxe", "Edition", "Pro"),
                 ("Standard", "Collector", "XL"), (20.0, 500.0), False, -1.9),
    CategorySpec("books", ("Novel", "Cookbook", "Biography", "Guide", "Thriller", "Atlas"),
                 ("Illustrated", "Paperback", "Hardcover", "Bestseller", "Classic"),
                 ("Vol 1", "Vol 2", "2nd Ed", "Large Print"), (5.0, 40.0), False, -1.5),
    CategorySpec("toys", ("Puzzle", "Building Set", "Doll", "Board Game", "Plush", "RC Car"),
                 ("Wooden", "Educational", "Deluxe", "Mini", "Glow"),
                 ("100pc", "500pc", "1000pc", "Ages 3+", "Ages 8+"), (8.0, 120.0), False, -2.1),
    CategorySpec("grocery", ("Cereal", "Pasta", "Olive Oil", "Granola", "Peanut Butter", "Rice"),
                 ("Organic", "Whole Grain", "Gluten Free", "Crunchy", "Honey"),
                 ("250g", "500g", "1kg", "750ml"), (1.5, 15.0), True, -2.8),
    CategorySpec("coffee", ("Coffee Beans", "Ground Coffee", "Coffee Pods", "Tea", "Espresso"),
                 ("Arabica", "Dark Roast", "Decaf", "Single Origin", "Green"),
                 ("250g", "500g", "1kg", "20pk"), (3.0, 35.0), True, -2.4),
    CategorySpec("sports", ("Yoga Mat", "Dumbbells", "Running Shoes", "Water Bottle", "Resistance Band"),
                 ("Non-slip", "Adjustable", "Lightweight", "Insulated", "Pro"),
                 ("S", "M", "L", "5kg", "10kg"), (8.0, 150.0), False, -1.9),
    CategorySpec("outdoor", ("Tent", "Backpack", "Sleeping Bag", "Headlamp", "Camping Stove"),
                 ("Ultralight", "Waterproof", "4-Season", "Compact", "Trail"),
                 ("20l", "35l", "2-person", "4-person"), (15.0, 400.0), False, -1.6),
    CategorySpec("home", ("Candle", "Throw Blanket", "Cushion", "Lamp", "Picture Frame", "Vase"),
                 ("Scented", "Linen", "Velvet", "Ceramic", "Minimal", "Boho"),
                 ("Small", "Medium", "Large", "Set of 2"), (6.0, 150.0), False, -2.0),
    CategorySpec("kitchen", ("Frying Pan", "Knife Set", "Blender", "Kettle", "Cutting Board", "Mug"),
                 ("Non-stick", "Stainless", "Cast Iron", "Bamboo", "Electric"),
                 ("20cm", "28cm", "1.5l", "Set of 4"), (8.0, 250.0), False, -1.8),
)  # fmt: skip
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)

_SYLLABLES = ("lu", "mi", "ra", "ve", "no", "ka", "zen", "sol", "tri", "bo", "fa", "qui", "ori", "pe", "xa")


@dataclass(frozen=True)
class Catalogue:
    """Column arrays over items ``0..n_items-1`` (the item id is the index)."""

    category: NDArray[np.int64]
    brand: NDArray[np.int64]
    price: NDArray[np.float64]
    popularity: NDArray[np.float64]
    """Global Zipf popularity, sums to 1."""
    vectors: NDArray[np.float64]
    """Latent item vectors (category direction + item noise), shape (n_items, dim)."""
    titles: tuple[str, ...]
    brands: tuple[str, ...]
    by_category: tuple[NDArray[np.int64], ...]
    """Item ids of each category."""
    cum_pop_in_category: tuple[NDArray[np.float64], ...]
    """Cumulative within-category popularity, for inverse-CDF sampling."""

    @property
    def n_items(self) -> int:
        return int(self.category.shape[0])

    def category_name(self, item_id: int) -> str:
        return CATEGORY_NAMES[int(self.category[item_id])]


def brand_names(rng: np.random.Generator, n: int) -> tuple[str, ...]:
    """``n`` distinct pronounceable brand names (deterministic for the generator state)."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        k = int(rng.integers(2, 4))
        name = "".join(_SYLLABLES[int(i)] for i in rng.integers(0, len(_SYLLABLES), k)).capitalize()
        if name not in seen:
            seen.add(name)
            names.append(name)
    return tuple(names)


def make_titles(
    rng: np.random.Generator, category: NDArray[np.int64], brand: NDArray[np.int64], brands: tuple[str, ...]
) -> tuple[str, ...]:
    """``"<Brand> <Variant> <Noun> <Size>"`` per item, e.g. ``"Lumi Vitamin C Serum 30ml"``."""
    u = rng.random((category.shape[0], 3))
    titles = []
    for (c, b), (a, n, s) in zip(zip(category.tolist(), brand.tolist(), strict=True), u.tolist(), strict=True):
        spec = CATEGORIES[c]
        variant = spec.variants[int(a * len(spec.variants))]
        noun = spec.nouns[int(n * len(spec.nouns))]
        titles.append(f"{brands[b]} {variant} {noun} {spec.sizes[int(s * len(spec.sizes))]}")
    return tuple(titles)


def build_catalogue(
    rng: np.random.Generator, n_items: int, category_vectors: NDArray[np.float64], zipf_a: float = 1.1
) -> Catalogue:
    """A catalogue whose item ids are ranked by popularity within a random permutation."""
    n_cat, dim = category_vectors.shape
    # Balanced categories so that every category has items even in tiny test worlds.
    category = rng.permutation(np.arange(n_items) % n_cat)
    brands = brand_names(rng, max(8, n_items // 25))
    brand = rng.integers(0, len(brands), n_items)
    lo = np.array([CATEGORIES[c].price_range[0] for c in range(n_cat)])
    hi = np.array([CATEGORIES[c].price_range[1] for c in range(n_cat)])
    # Log-uniform within the category's range, rounded to .99 endings like a real shop.
    raw = np.exp(rng.uniform(np.log(lo[category]), np.log(hi[category])))
    price = np.maximum(np.floor(raw) + 0.99, 0.99)
    ranks = rng.permutation(n_items) + 1
    popularity = ranks.astype(np.float64) ** -zipf_a
    popularity /= popularity.sum()
    noise = rng.normal(0.0, 0.6 / np.sqrt(dim), (n_items, dim))
    vectors = category_vectors[category] + noise
    titles = make_titles(rng, category, brand, brands)
    by_cat = tuple(np.flatnonzero(category == c) for c in range(n_cat))
    cum = tuple(_cumulative(popularity[ids]) for ids in by_cat)
    logger.debug("catalogue: %d items, %d brands", n_items, len(brands))
    return Catalogue(category, brand, price, popularity, vectors, titles, brands, by_cat, cum)


def _cumulative(weights: NDArray[np.float64]) -> NDArray[np.float64]:
    if weights.size == 0:
        return weights
    cum: NDArray[np.float64] = np.cumsum(weights)
    out: NDArray[np.float64] = cum / cum[-1]
    return out
