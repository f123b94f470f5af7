"""Training sequences and catalogue metadata from the simulated shop's clickstream.

Events are replayed through :func:`services.recommendation.features.append_event`, the very
function the scorer uses on the live stream, so the default model learns on sequences shaped
exactly like the ones it serves. Sim item ids start at 0, so token = item id + 1.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from export.recommendation.data import MIN_LENGTH, SequenceDataset
from services.recommendation.catalog import ALL
from services.recommendation.features import EVENT_WEIGHTS, append_event, empty_history, sequence_of
from sim.catalogue import CATEGORIES, CATEGORY_NAMES
from sim.clickstream import ClickstreamSim
from sim.registry import world_for

logger = logging.getLogger(__name__)

ITEM_ID_OFFSET = 1
TRAIN_CAPACITY = 10_000
"""History bound while building training sequences (the model windows them to ``max_len``)."""
POPULAR_PER_CATEGORY = 100


@dataclass(frozen=True)
class SimClicks:
    """Users' sequences (as tokens) and weighted item popularity of one slice of the stream."""

    dataset: SequenceDataset
    popularity: np.ndarray
    """Event-weighted counts per token."""


def sim_clicks(n_events: int, seed: int = 7, skip: int = 0) -> SimClicks:
    """Events ``skip .. skip + n_events`` of the seeded clickstream, grouped per user."""
    world = world_for(seed)
    stream = ClickstreamSim(world)
    histories: dict[str, dict[str, Any]] = defaultdict(empty_history)
    popularity = np.zeros(world.catalogue.n_items + ITEM_ID_OFFSET)
    for i, (event, _) in enumerate(stream.iter_dicts(skip + n_events)):
        if i < skip:
            continue
        weight = EVENT_WEIGHTS.get(event["event_type"], 1)
        user = event["user_id"]
        histories[user] = append_event(histories[user], event["item_id"], weight, TRAIN_CAPACITY)
        popularity[event["item_id"] + ITEM_ID_OFFSET] += weight
    sequences = [[i + ITEM_ID_OFFSET for i in sequence_of(h)] for h in histories.values()]
    sequences = [s for s in sequences if len(s) >= MIN_LENGTH]
    # The item's category as a side feature (ids from 1): an item seen a few times still gets its
    # category's vector, the part of a user's taste the simulator draws from.
    categories = {i + ITEM_ID_OFFSET: [int(c) + 1] for i, c in enumerate(world.catalogue.category.tolist())}
    ds = SequenceDataset(f"sim:seed={seed}:events={skip}+{n_events}", sequences, world.catalogue.n_items,
                         categories)
    logger.info("%s: %d users, %d interactions", ds.name, ds.num_users, ds.num_interactions)
    return SimClicks(ds, popularity)


def catalogue_metadata(seed: int, popularity: np.ndarray) -> dict[str, Any]:
    """The ``preprocessing`` entries :class:`services.recommendation.catalog.ItemCatalog` reads."""
    cat = world_for(seed).catalogue
    item_category = [-1, *(int(c) for c in cat.category)]
    ranked = np.argsort(-popularity[ITEM_ID_OFFSET:], kind="stable")
    popular: dict[str, list[int]] = {ALL: [int(i) for i in ranked[: 2 * POPULAR_PER_CATEGORY]]}
    for c, name in enumerate(CATEGORY_NAMES):
        in_cat = ranked[cat.category[ranked] == c]
        popular[name] = [int(i) for i in in_cat[:POPULAR_PER_CATEGORY]]
    return {
        "num_items": cat.n_items,
        "item_id_offset": ITEM_ID_OFFSET,
        "categories": list(CATEGORY_NAMES),
        "item_category": item_category,
        "popular": popular,
        "repeat_purchase_categories": [c.name for c in CATEGORIES if c.repeat_purchase],
    }
