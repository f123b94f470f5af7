"""The online check's definitions, and room in the simulated shop for a recommender to beat popularity."""

from __future__ import annotations

import numpy as np

from export.recommendation.online_check import K, next_outcomes, oracle_top, popular_before
from sim.clickstream import ClickstreamSim
from sim.registry import world_for


def test_the_outcome_is_the_users_next_click_on_another_item() -> None:
    users = ["a", "a", "b", "a", "a", "b"]
    items = [1, 1, 2, 3, 4, 2]
    # a views 1, carts 1 (not an outcome of the view), then clicks 3 and 4; b only re-clicks 2.
    assert next_outcomes(users, items) == [3, 3, None, 4, None, None]


def test_popularity_counts_only_the_clicks_before_each_event() -> None:
    items = [5] * 3 + [7] * 4 + [5]
    top = popular_before(items, n_items=20)
    assert top.shape == (8, K)
    assert top[0].tolist() == list(range(K))  # nothing seen yet: ties by lower id
    assert top[3][0] == 5 and top[6][:2].tolist() == [5, 7]  # 3 clicks each: the lower id first
    assert top[7][:2].tolist() == [7, 5]  # 7's fourth click was before event 7


def test_the_simulators_own_next_item_guess_doubles_popularitys_hit_rate() -> None:
    """If the truth is hardly better than the popular items, no model can show that it personalises."""
    sim = ClickstreamSim(world_for(7))
    rows = list(sim.iter_dicts(12_000))
    items = [e["item_id"] for e, _ in rows]
    outcomes = next_outcomes([e["user_id"] for e, _ in rows], items)
    popular = popular_before(items, sim.world.catalogue.n_items)
    judged = [(i, j) for i, j in enumerate(outcomes) if j is not None and i >= 6_000]
    oracle = np.mean([items[j] in oracle_top(sim, rows, i, j) for i, j in judged])
    baseline = np.mean([items[j] in popular[i] for i, j in judged])
    assert len(judged) > 2_000
    assert oracle >= 2.0 * baseline, f"oracle HR@{K} {oracle:.3f} vs popularity {baseline:.3f}"
