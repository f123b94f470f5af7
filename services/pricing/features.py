"""Demand-model features: the ONE implementation used by training (export/pricing) and serving.

The demand model sees a context vector per request and, per candidate price, the log ratio
of that price to the reference price. Everything is relative (ratios, logs) so that one model
can be trained on weekly grocery data in dollars and fine-tuned on a simulated shop in any
currency.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

CATEGORY_BUCKETS = 48
"""Categories are one-hot encoded into this many stable (crc32) buckets."""
MAX_LOG_RATIO = 1.5
"""Price ratios are clipped to exp(±1.5) ≈ [0.22, 4.5] so outliers cannot blow up the MLP."""

FEATURE_NAMES: tuple[str, ...] = (
    "log1p_recent_units",
    "log_recent_price_ratio",
    "log_ref_price",
    "has_competitor",
    "log_competitor_ratio",
    "feature",
    "display",
    "tpr",
    "week_sin",
    "week_cos",
    *(f"category_{i}" for i in range(CATEGORY_BUCKETS)),
)
N_FEATURES = len(FEATURE_NAMES)

Float32Array = npt.NDArray[np.float32]


class DemandContext(NamedTuple):
    """Everything the demand model knows about one SKU at decision time (besides the price)."""

    ref_price: float
    """Regular (non-promotional) price; candidate prices are expressed relative to it."""
    recent_units: float
    """Mean units per period over the recent window."""
    recent_price: float
    """Mean price over the same window (the price at which ``recent_units`` were sold)."""
    competitor_price: float | None = None
    feature: bool = False
    display: bool = False
    tpr: bool = False
    week_of_year: int = 1
    category: str = ""


def category_bucket(category: str) -> int:
    """A stable bucket (crc32, never Python's salted ``hash()``)."""
    return zlib.crc32(category.encode("utf-8")) % CATEGORY_BUCKETS


def _log_ratio(numerator: float, denominator: float) -> float:
    ratio = math.log(max(numerator, 1e-6) / max(denominator, 1e-6))
    return max(-MAX_LOG_RATIO, min(MAX_LOG_RATIO, ratio))


def context_row(ctx: DemandContext) -> list[float]:
    """The feature vector of one context, in :data:`FEATURE_NAMES` order."""
    angle = 2.0 * math.pi * (ctx.week_of_year % 52) / 52.0
    one_hot = [0.0] * CATEGORY_BUCKETS
    one_hot[category_bucket(ctx.category)] = 1.0
    has_comp = ctx.competitor_price is not None and ctx.competitor_price > 0
    return [
        math.log1p(max(ctx.recent_units, 0.0)),
        _log_ratio(ctx.recent_price, ctx.ref_price),
        math.log(max(ctx.ref_price, 1e-3)),
        1.0 if has_comp else 0.0,
        _log_ratio(ctx.competitor_price or 1.0, ctx.ref_price) if has_comp else 0.0,
        float(ctx.feature),
        float(ctx.display),
        float(ctx.tpr),
        math.sin(angle),
        math.cos(angle),
        *one_hot,
    ]


def context_matrix(contexts: Sequence[DemandContext]) -> Float32Array:
    """Stack contexts into the model's ``context`` input, shape ``[N, N_FEATURES]``."""
    return context_columns(ContextColumns(
        ref_price=np.array([c.ref_price for c in contexts], dtype=np.float64),
        recent_units=np.array([c.recent_units for c in contexts], dtype=np.float64),
        recent_price=np.array([c.recent_price for c in contexts], dtype=np.float64),
        competitor_price=np.array([c.competitor_price or 0.0 for c in contexts], dtype=np.float64),
        flags=np.array([(c.feature, c.display, c.tpr) for c in contexts], dtype=np.float32).reshape(-1, 3),
        week_of_year=np.array([c.week_of_year for c in contexts], dtype=np.int64),
        bucket=category_buckets([c.category for c in contexts]),
    ))  # fmt: skip


class ContextColumns(NamedTuple):
    """:class:`DemandContext` of a batch, one array per field (how the scorer holds a batch)."""

    ref_price: npt.NDArray[np.float64]
    recent_units: npt.NDArray[np.float64]
    recent_price: npt.NDArray[np.float64]
    competitor_price: npt.NDArray[np.float64]
    """0 where there is none."""
    flags: npt.NDArray[np.float32]
    """``[N, 3]``: feature, display, tpr."""
    week_of_year: npt.NDArray[np.int64]
    bucket: npt.NDArray[np.intp]
    """:func:`category_bucket` of each row's category."""


def category_buckets(categories: Sequence[str]) -> npt.NDArray[np.intp]:
    """:func:`category_bucket` per row, hashing each distinct category once."""
    buckets = {category: category_bucket(category) for category in set(categories)}
    return np.array([buckets[c] for c in categories], dtype=np.intp)


def context_columns(ctx: ContextColumns) -> Float32Array:
    """The model's ``context`` input, column by column (the same formulas as :func:`context_row`)."""
    n = len(ctx.ref_price)
    out = np.zeros((n, N_FEATURES), dtype=np.float32)
    ref, comp = ctx.ref_price, ctx.competitor_price
    has_comp = comp > 0
    angle = 2.0 * np.pi * (ctx.week_of_year % 52) / 52.0
    out[:, 0] = np.log1p(np.maximum(ctx.recent_units, 0.0))
    out[:, 1] = _log_ratios(ctx.recent_price, ref)
    out[:, 2] = np.log(np.maximum(ref, 1e-3))
    out[:, 3] = has_comp
    out[:, 4] = np.where(has_comp, _log_ratios(np.where(has_comp, comp, 1.0), ref), 0.0)
    out[:, 5:8] = ctx.flags
    out[:, 8] = np.sin(angle)
    out[:, 9] = np.cos(angle)
    out[np.arange(n), 10 + ctx.bucket] = 1.0
    return out


def _log_ratios(numerator: npt.NDArray[np.float64], denominator: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """:func:`_log_ratio` over arrays."""
    ratio = np.log(np.maximum(numerator, 1e-6) / np.maximum(denominator, 1e-6))
    return np.clip(ratio, -MAX_LOG_RATIO, MAX_LOG_RATIO)


def log_price_ratio(prices: npt.ArrayLike, ref_prices: npt.ArrayLike) -> Float32Array:
    """The model's ``log_price_ratio`` input: ``log(price / ref_price)`` row-wise, clipped.

    ``prices`` is ``[N, K]`` (a grid per row) and ``ref_prices`` is ``[N]``.
    """
    ratio = np.maximum(np.asarray(prices, dtype=np.float64), 1e-6)
    ratio /= np.maximum(np.asarray(ref_prices, dtype=np.float64), 1e-6)[:, None]
    np.log(ratio, out=ratio)
    return np.clip(ratio, -MAX_LOG_RATIO, MAX_LOG_RATIO, out=ratio).astype(np.float32)
