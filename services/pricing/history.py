"""Each SKU's price history in the state store, read and written for a whole batch.

State per ``(partition, sku)``: ``day`` (UTC date of its last request), ``anchor`` (the first price
seen that day: the daily change limit is around it), ``seen_price`` (the ``current_price`` of its
last request: its ``recent_units`` were sold at that price), and, once priced, ``last_price`` and
``ts_ms`` of its last decision. A SKU may appear several times in a batch: each request sees the
state the earlier ones left, as if they had been scored one by one. The store gets one write per
SKU, in the order of each SKU's last write under one-by-one scoring (last request, then last
decision), so its recency order and changelog are the same as they were then.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from shared.runtime.state import StateStore

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000
FloatArray = npt.NDArray[np.float64]
Key = tuple[int, str]


def utc_day(ts_ms: int) -> str:
    return _utc_date(ts_ms // DAY_MS)


@functools.lru_cache(maxsize=64)
def _utc_date(day: int) -> str:
    # A batch spans one or two UTC days: format each day once, not a datetime per request.
    return dt.datetime.fromtimestamp(day * DAY_MS // 1000, tz=dt.UTC).date().isoformat()


class History(NamedTuple):
    """What the rows of a batch see of their SKU's history, and what the batch will write back."""

    anchor: FloatArray
    """The first price of the row's UTC day for its SKU (its own price if it is the first)."""
    previous: FloatArray
    """The SKU's ``current_price`` at its previous request (NaN: none known)."""
    keys: list[Key]
    stored: list[dict[str, Any] | None]
    """Each key's state before the batch."""
    code: npt.NDArray[np.intp]
    """Each row's key, as an index into ``keys``."""
    order: npt.NDArray[np.intp]
    """Row numbers sorted by key (stable): each key's requests together, in batch order."""
    first: npt.NDArray[np.bool_]
    """In ``order``: whether the row is its key's first."""
    day: npt.NDArray[np.int64]


def read_history(
    store: StateStore | None, partitions: Sequence[int], skus: Sequence[str], ts_ms: npt.NDArray[np.int64],
    current: FloatArray,
) -> History:
    """One store read per distinct SKU; the rest over arrays (see the module docstring)."""
    index: dict[Key, int] = {}
    code = np.fromiter((index.setdefault(k, len(index)) for k in zip(partitions, skus, strict=True)), np.intp,
                       len(skus))  # fmt: skip
    keys = list(index)
    stored: list[dict[str, Any] | None] = [store.get(*key) for key in keys] if store is not None else [None] * len(keys)
    order = np.argsort(code, kind="stable")
    sorted_code = code[order]
    first = np.ones(len(order), dtype=np.bool_)
    first[1:] = sorted_code[1:] != sorted_code[:-1]
    day = ts_ms // DAY_MS
    first_days = day[order[first]].tolist()  # per key, in key order (codes count up from 0)
    kept_anchor = np.array([_anchor(state, d) for state, d in zip(stored, first_days, strict=True)])
    kept_seen = np.array([float(s["seen_price"]) if s and "seen_price" in s else np.nan for s in stored])
    # A day's anchor is set by its first request; the stored one counts if it is the same day.
    day_sorted, current_sorted = day[order], current[order]
    starts = first.copy()
    starts[1:] |= day_sorted[1:] != day_sorted[:-1]
    start_value = np.where(first & ~np.isnan(kept_anchor[sorted_code]), kept_anchor[sorted_code], current_sorted)
    last_start = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    previous_sorted = np.empty(len(order))
    previous_sorted[1:] = current_sorted[:-1]
    previous_sorted[first] = kept_seen[sorted_code[first]]
    anchor, previous = np.empty(len(order)), np.empty(len(order))
    anchor[order], previous[order] = start_value[last_start], previous_sorted
    return History(anchor, previous, keys, stored, code, order, first, day)


def _anchor(state: dict[str, Any] | None, day: int) -> float:
    return float(state["anchor"]) if state and state.get("day") == _utc_date(day) else np.nan


def write_history(
    store: StateStore, history: History, current: FloatArray, ts_ms: npt.NDArray[np.int64],
    priced: npt.NDArray[np.intp], price: FloatArray,
) -> None:
    """Each SKU's new state: its last request's day, anchor and price, and its last decision
    (``price[j]`` decided row ``priced[j]``; rows left out were not priced)."""
    n = len(history.order)
    last = np.ones(n, dtype=np.bool_)
    last[:-1] = history.first[1:]
    last_row = history.order[last]  # per key
    last_priced = np.full(len(history.keys), -1)
    np.maximum.at(last_priced, history.code[priced], np.arange(len(priced)))  # index into ``priced``
    decided_row = np.full(len(history.keys), -1)
    decided_row[last_priced >= 0] = priced[last_priced[last_priced >= 0]]
    # Keys whose last write was a decision come after those never decided in this batch.
    rank = np.where(decided_row >= 0, n + decided_row, last_row)
    order = np.argsort(rank)
    days, anchors, seen = history.day.tolist(), history.anchor.tolist(), current.tolist()
    prices, times = price.tolist(), ts_ms.tolist()
    day_text = {day: _utc_date(day) for day in set(days)}
    keys, stored = history.keys, history.stored
    columns = (order.tolist(), last_row[order].tolist(), last_priced[order].tolist(), decided_row[order].tolist())
    for k, row, decision, decided in zip(*columns, strict=True):
        value = {**(stored[k] or {}), "day": day_text[days[row]], "anchor": anchors[row], "seen_price": seen[row]}
        if decision >= 0:
            value["last_price"], value["ts_ms"] = prices[decision], times[decided]
        partition, sku = keys[k]
        store.put(partition, sku, value)
