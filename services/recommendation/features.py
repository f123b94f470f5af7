"""The one preprocessing path from a user's events to the model input, used by training,
evaluation and the scorer alike (so offline metrics are the served model's metrics).

A user's history is a bounded list of ``[item_id, weight]`` pairs, oldest first, stored as a
JSON-friendly dict in the state store. Event types carry weights (purchase > add-to-cart >
view) that decide what survives when the history is full: the oldest of the lowest-weight
interactions is evicted first, so a purchase outlives many later views. Repeating the item
just seen (view then add-to-cart of the same product) updates the last entry instead of
spending a slot, keeping the sequence one step per product, as in the training data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

EVENT_WEIGHTS: dict[str, int] = {"view": 1, "add_to_cart": 2, "purchase": 3}
"""Default weights; settings may override them. Search events carry no item and no weight."""


def empty_history() -> dict[str, Any]:
    return {"items": [], "purchased": []}


def append_event(history: dict[str, Any], item_id: int, weight: int, capacity: int) -> dict[str, Any]:
    """A new history with one interaction appended (the input dict is not modified).

    The new history shares the old one's pairs and purchased list: they are never changed in place,
    only replaced, so copying them (up to ``capacity`` lists per event) bought nothing.
    """
    items: list[list[int]] = list(history.get("items", []))
    if items and items[-1][0] == item_id:
        items[-1] = [item_id, max(items[-1][1], weight)]
    else:
        items.append([item_id, weight])
    while len(items) > capacity:
        lightest = min(p[1] for p in items)
        del items[next(i for i, p in enumerate(items) if p[1] == lightest)]
    return {"items": items, "purchased": history.get("purchased", [])}


def record_purchase(history: dict[str, Any], item_id: int, capacity: int) -> dict[str, Any]:
    """Remember a purchased item (bounded, newest kept) so it can be excluded later.

    ``capacity`` 0 remembers nothing (exclusion off); ``[-0:]`` would keep everything.
    """
    purchased = [i for i in history.get("purchased", []) if i != item_id] + [item_id]
    return {"items": history.get("items", []), "purchased": purchased[-capacity:] if capacity > 0 else []}


def sequence_of(history: dict[str, Any]) -> list[int]:
    """The item ids of a history, oldest first: what the model reads."""
    return [int(p[0]) for p in history.get("items", [])]


def history_from_items(items: Iterable[int], weight: int, capacity: int) -> dict[str, Any]:
    """Replay a plain item sequence through :func:`append_event` (evaluation, tests)."""
    history = empty_history()
    for item in items:
        history = append_event(history, int(item), weight, capacity)
    return history


def pad_left(sequences: Sequence[Sequence[int]], max_len: int, width: int | None = None) -> np.ndarray:
    """``[batch, width]`` int64, each row's newest ``max_len`` items right-aligned, 0 padded.

    ``width`` defaults to the longest (clipped) row, so a batch of short histories makes a
    short tensor; the model counts positions from the right, so results do not depend on it.
    """
    clipped = [list(s)[-max_len:] for s in sequences]
    cols = width if width is not None else max(1, max((len(s) for s in clipped), default=1))
    out = np.zeros((len(clipped), cols), dtype=np.int64)
    for row, seq in enumerate(clipped):
        if seq:
            out[row, cols - len(seq) :] = seq
    return out
