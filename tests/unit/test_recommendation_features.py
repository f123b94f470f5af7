"""Recommendation preprocessing, catalogue filters, top-K and ranking metrics (no model, no broker)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from export.recommendation.metrics import ranks_full, ranks_sampled, summarize
from services.recommendation.catalog import ALL, BusinessFilters, ItemCatalog
from services.recommendation.features import (
    append_event,
    empty_history,
    history_from_items,
    pad_left,
    record_purchase,
    sequence_of,
)
from services.recommendation.ranker import top_k


def test_history_keeps_order_and_merges_a_repeated_last_item():
    h = empty_history()
    for item, w in [(5, 1), (7, 1), (7, 2), (9, 1)]:
        h = append_event(h, item, w, capacity=10)
    assert sequence_of(h) == [5, 7, 9]
    assert h["items"][1] == [7, 2]  # the add-to-cart upgraded the view of item 7


def test_full_history_evicts_the_oldest_lightest_event_so_purchases_outlive_views():
    h = empty_history()
    for item, w in [(1, 3), (2, 1), (3, 1), (4, 2)]:
        h = append_event(h, item, w, capacity=3)
    assert sequence_of(h) == [1, 3, 4]  # view 2 went first, the purchase of 1 stayed


def test_append_does_not_modify_the_stored_history():
    h = history_from_items([1, 2], weight=1, capacity=5)
    before = [list(p) for p in h["items"]]
    append_event(h, 2, 3, capacity=5)
    assert h["items"] == before


def test_purchases_are_remembered_bounded_newest_kept():
    h = empty_history()
    for item in [1, 2, 3, 2]:
        h = record_purchase(h, item, capacity=2)
    assert h["purchased"] == [3, 2]
    assert record_purchase(h, 4, capacity=0)["purchased"] == []  # purchased_len=0 turns exclusion off


@given(st.lists(st.lists(st.integers(1, 99), max_size=12), min_size=1, max_size=6), st.integers(1, 8))
def test_pad_left_right_aligns_the_newest_items(seqs, max_len):
    out = pad_left(seqs, max_len)
    assert out.dtype == np.int64 and out.shape[0] == len(seqs)
    for row, seq in zip(out, seqs, strict=True):
        tail = seq[-max_len:]
        assert list(row[len(row) - len(tail) :]) == tail
        assert not row[: len(row) - len(tail)].any()


def _catalog() -> ItemCatalog:
    # tokens 1..6 = item ids 0..5; items 0-2 "food" (repeat purchase), 3-5 "toys"
    return ItemCatalog({
        "num_items": 6, "item_id_offset": 1, "categories": ["food", "toys"],
        "item_category": [-1, 0, 0, 0, 1, 1, 1],
        "popular": {ALL: [4, 0, 5, 1], "toys": [4, 5, 3], "food": [0, 1, 2]},
        "repeat_purchase_categories": ["food"],
    })


def test_catalog_maps_ids_and_knows_unknown_items():
    cat = _catalog()
    assert cat.token(0) == 1 and cat.token(5) == 6 and cat.item_id(6) == 5
    assert cat.token(6) is None and cat.token(-1) is None
    assert cat.category_of(4) == "toys" and cat.category_of(99) is None


def test_business_filters_mask_out_of_stock_items_and_blocked_categories():
    allowed = _catalog().allowed(BusinessFilters(frozenset({0}), frozenset({"toys"})))
    assert allowed.tolist() == [False, False, True, True, False, False, False]


def test_config_topic_filters_override_settings_key_by_key():
    base = BusinessFilters(frozenset({1}), frozenset({"toys"}))
    merged = BusinessFilters.from_json({"out_of_stock": [2, 3]}, base)
    assert merged == BusinessFilters(frozenset({2, 3}), frozenset({"toys"}))
    assert BusinessFilters.from_json(None, base) is base


def test_popular_in_category_skips_filtered_and_excluded_then_tops_up_from_all():
    cat = _catalog()
    allowed = cat.allowed(BusinessFilters(frozenset({5})))
    assert cat.popular_in("toys", 3, allowed, exclude={4}) == [3, 0, 1]
    assert cat.repeatable(0) and not cat.repeatable(4) and cat.repeatable(4, ["toys"])


def test_top_k_matches_a_full_sort():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(5, 300)).astype(np.float32)
    cols, vals = top_k(scores, 10)
    expected = np.argsort(-scores, axis=1)[:, :10]
    assert (cols == expected).all()
    assert np.allclose(vals, np.take_along_axis(scores, expected, axis=1))


def test_ranks_and_metrics_of_a_known_case():
    scores = np.array([[0.0, 0.9, 0.5, 0.1, 0.7], [0.0, 0.1, 0.2, 0.3, 0.4]], dtype=np.float32)
    targets = np.array([2, 4])
    # user 0 has seen item 1 (excluded), so target 2 ranks behind only item 4
    full = ranks_full(scores, targets, [[1], [3]])
    assert full.tolist() == [1, 0]
    sampled = ranks_sampled(scores, targets, np.array([[1, 3], [1, 2]]))
    assert sampled.tolist() == [1, 0]
    m = summarize(np.array([0, 1, 20]))
    assert m["HR@1"] == pytest.approx(1 / 3, abs=1e-4) and m["HR@10"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / np.log2(3)) / 3, abs=1e-4)


def test_a_constant_model_gets_no_credit_from_ties():
    scores = np.zeros((3, 50), dtype=np.float32)
    assert ranks_full(scores, np.array([1, 2, 3]), [[], [], []]).min() == 48
