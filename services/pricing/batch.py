"""A micro-batch of pricing requests as columns: one array (or list) per field, no object per request."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from math import fsum
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from services.pricing.features import category_buckets
from shared.runtime.scorer import Event
from shared.schemas.pricing import PricingRequest

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


class RequestColumns(NamedTuple):
    sku: list[str]
    partition: list[int]
    ts_ms: npt.NDArray[np.int64]
    current_price: FloatArray
    unit_cost: FloatArray
    stock: FloatArray
    recent_units: FloatArray
    floor: FloatArray
    """NaN where the request has none."""
    ceiling: FloatArray
    """NaN where the request has none."""
    week_of_year: npt.NDArray[np.int64]
    competitor_price: FloatArray
    """The mean of the competitors' prices (as ``statistics.fmean``); 0 where there are none."""
    flags: npt.NDArray[np.float32]
    """``[N, 3]``: feature, display, tpr."""
    bucket: npt.NDArray[np.intp]
    """The category's one-hot bucket (each distinct category hashed once)."""

    @classmethod
    def of(cls, batch: Sequence[Event[PricingRequest]]) -> RequestColumns:
        values = [event.value for event in batch]
        n = len(values)

        def numbers(name: str, dtype: type[np.generic] = np.float64) -> npt.NDArray[Any]:
            return np.fromiter(map(attrgetter(name), values), dtype, n)

        def optional(name: str) -> FloatArray:
            return np.array(list(map(attrgetter(name), values)), dtype=np.float64)  # None -> NaN

        competitors = map(attrgetter("competitor_prices"), values)
        return cls(
            sku=list(map(attrgetter("sku"), values)),
            partition=[event.partition for event in batch],
            ts_ms=numbers("ts_ms", np.int64),
            current_price=numbers("current_price"), unit_cost=numbers("unit_cost"), stock=numbers("stock"),
            recent_units=numbers("recent_units"), floor=optional("floor"), ceiling=optional("ceiling"),
            week_of_year=numbers("week_of_year", np.int64),
            competitor_price=np.fromiter((fsum(c) / len(c) if c else 0.0 for c in competitors), np.float64, n),
            flags=np.stack([numbers(flag, np.float32) for flag in ("feature", "display", "tpr")], axis=1),
            bucket=category_buckets(list(map(attrgetter("category"), values))),
        )  # fmt: skip
