"""Ad CTR building blocks without a model: features, cache, ranking, calibration, metrics."""

from __future__ import annotations

import json
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ad_ctr.cache import EmbeddingCache, Encoder
from services.ad_ctr.features import (
    REQUEST_SPEC,
    BucketMemo,
    CandidateColumns,
    FeatureSpec,
    TextSpec,
    bucket,
    candidate_rows,
    encode_columns,
    encode_requests,
    encode_rows,
    encode_titles,
    title_tokens,
)
from services.ad_ctr.ranking import batch_expected_value_ranks, expected_value_ranks
from shared.errors import InvalidEvent
from shared.schemas.ads import AdRequest
from shared.schemas.base import decode
from sim.registry import make_stream


def test_feature_buckets_are_stable_across_processes_and_within_their_field_range() -> None:
    # CRC32 of "device\x1fmobile" is fixed: a changed hash would silently break every served model.
    assert bucket("device", "mobile", 8) == 2
    assert bucket("creative_id", "cr000010", 8192) == 8191
    rows = encode_rows(REQUEST_SPEC, [{"device": "mobile", "hour": 3}, {}])
    assert rows.shape == (2, len(REQUEST_SPEC.fields)) and rows.dtype == np.int64
    for j, (off, n) in enumerate(zip(REQUEST_SPEC.offsets, REQUEST_SPEC.buckets, strict=True)):
        assert (off <= rows[:, j]).all() and (rows[:, j] < off + n).all()


def test_the_scorer_encodes_a_batch_as_training_encodes_its_rows() -> None:
    # Serving hashes each request's context once and broadcasts it; training hashes row by row.
    # A difference would be training/serving skew that no score test would notice.
    requests = [AdRequest.model_validate(event) for event, _ in make_stream("ads").iter_dicts(40)]
    spec = FeatureSpec((*REQUEST_SPEC.fields, "not_in_requests"), (*REQUEST_SPEC.buckets, 5))
    rows = [row for r in requests for row in candidate_rows(r)]
    expected = np.array([[off + bucket(f, row.get(f), n) for f, n, off in zip(spec.fields, spec.buckets,
                                                                                spec.offsets, strict=True)]
                         for row in rows])
    np.testing.assert_array_equal(encode_rows(spec, rows), expected)
    np.testing.assert_array_equal(encode_requests(spec, requests), expected)


def test_titles_become_padded_hashed_tokens_with_a_mask() -> None:
    spec = TextSpec(buckets=101, max_tokens=6)
    ids, mask = encode_titles(spec, ["Free Shipping: Blue Mug", "!!!"])
    assert title_tokens("Free Shipping") == ["free", "shipping", "free_shipping"]
    assert mask[0].sum() == 6 and mask[1].sum() == 1  # 4 words + 3 bigrams cut at 6; "<empty>" token
    assert (ids[mask == 0] == 0).all() and (ids[mask == 1] >= 1).all() and (ids < 101).all()
    # Each token's id is its CRC32 (training hashed them one at a time; the export shares this code).
    tokens = title_tokens("Free Shipping: Blue Mug")[:6]
    assert ids[0].tolist() == [1 + zlib.crc32(t.encode()) % 100 for t in tokens]
    assert ids[1].tolist() == [1 + zlib.crc32(b"<empty>") % 100] + [0] * 5


def _encoder(calls: list[int]) -> Encoder:
    def encode(titles: Sequence[str]) -> np.ndarray:
        calls.append(len(titles))
        return np.array([[float(len(t)), 1.0] for t in titles], dtype=np.float32)
    return encode


def test_cache_runs_the_encoder_only_on_distinct_misses_and_then_hits() -> None:
    cache = EmbeddingCache(capacity=10)
    calls: list[int] = []
    first = cache.lookup(["a", "b", "a"], ["xx", "yyy", "xx"], _encoder(calls))
    second = cache.lookup(["b", "a"], ["yyy", "xx"], _encoder(calls))
    assert calls == [2]  # one encoder call, for "a" and "b" once each; none the second time
    assert first[:, 0].tolist() == [2.0, 3.0, 2.0] and second[:, 0].tolist() == [3.0, 2.0]
    assert (cache.hits, cache.misses) == (2, 3)


def test_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    cache = EmbeddingCache(capacity=2)
    calls: list[int] = []
    enc = _encoder(calls)
    cache.lookup(["a", "b"], ["a", "b"], enc)
    cache.lookup(["a"], ["a"], enc)  # "a" is now the most recent
    cache.lookup(["c"], ["c"], enc)  # evicts "b"
    assert len(cache) == 2
    cache.lookup(["a"], ["a"], enc)
    cache.lookup(["b"], ["b"], enc)
    assert calls == [2, 1, 1]  # "a" hit, "b" had to be encoded again


def test_cache_of_size_zero_encodes_every_time() -> None:
    cache = EmbeddingCache(capacity=0)
    calls: list[int] = []
    for _ in range(3):
        cache.lookup(["a"], ["a"], _encoder(calls))
    assert calls == [1, 1, 1] and len(cache) == 0


@given(st.lists(st.tuples(st.floats(0.01, 100.0), st.floats(0.0, 1.0)), min_size=1, max_size=50))
def test_ranks_follow_bid_times_pctr(pairs: list[tuple[float, float]]) -> None:
    bids, pctr = np.array([b for b, _ in pairs]), np.array([p for _, p in pairs])
    ev, ranks = expected_value_ranks(bids, pctr)
    assert sorted(ranks.tolist()) == list(range(1, len(pairs) + 1))
    by_rank = ev[np.argsort(ranks)]
    assert (np.diff(by_rank) <= 0).all()
    np.testing.assert_allclose(ev, bids * pctr)


@given(st.lists(st.lists(st.tuples(st.sampled_from([0.5, 1.0, 2.0]), st.sampled_from([0.0, 0.1, 0.2])),
                         min_size=1, max_size=8), min_size=1, max_size=6))
def test_a_batch_ranks_each_request_as_if_alone(requests: list[list[tuple[float, float]]]) -> None:
    bids = np.array([b for r in requests for b, _ in r])
    pctr = np.array([p for r in requests for _, p in r])
    ev, ranks = batch_expected_value_ranks(bids, pctr, [len(r) for r in requests])
    alone = [expected_value_ranks(np.array([b for b, _ in r]), np.array([p for _, p in r])) for r in requests]
    np.testing.assert_array_equal(ev, np.concatenate([e for e, _ in alone]))
    assert ranks.tolist() == [k for _, r in alone for k in r.tolist()]


def test_equal_expected_values_keep_request_order() -> None:
    _, ranks = expected_value_ranks(np.array([1.0, 2.0, 1.0]), np.array([0.2, 0.1, 0.2]))
    assert ranks.tolist() == [1, 2, 3]


def test_platt_calibration_is_monotone_and_fixes_an_overconfident_model() -> None:
    from export.ad_ctr.metrics import ece, fit_platt

    rng = np.random.default_rng(0)
    true_logit = rng.normal(-3.0, 1.0, 20_000)
    y = (rng.random(20_000) < 1 / (1 + np.exp(-true_logit))).astype(int)
    raw = 3.0 * true_logit + 4.0  # overconfident and shifted
    a, b = fit_platt(raw, y)
    assert a > 0
    grid = np.linspace(-20, 20, 101)
    assert (np.diff(1 / (1 + np.exp(-(a * grid + b)))) >= 0).all()
    before, after = ece(y, 1 / (1 + np.exp(-raw))), ece(y, 1 / (1 + np.exp(-(a * raw + b))))
    assert after < 0.01 < before


def test_auc_matches_sklearn_with_ties_and_bootstrap_brackets_it() -> None:
    from sklearn.metrics import roc_auc_score

    from export.ad_ctr.metrics import auc, bootstrap

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    p = np.round(rng.random(500) + 0.3 * y, 1)
    assert auc(y, p) == pytest.approx(roc_auc_score(y, p))
    (iv,) = bootstrap(auc, y, [p], n=200)
    assert iv.low < iv.value < iv.high


def test_the_memo_gives_column_ids_own_ids_across_batches_and_stays_bounded() -> None:
    requests = [AdRequest.model_validate(event) for event, _ in make_stream("ads").iter_dicts(60)]
    spec = FeatureSpec((*REQUEST_SPEC.fields, "not_in_requests"), (*REQUEST_SPEC.buckets, 5))
    memo = BucketMemo(spec, max_values=50)  # small enough to be emptied between batches
    for batch in (requests[:30], requests[20:], requests):
        columns = CandidateColumns.of(batch)
        expected = encode_rows(spec, [row for r in batch for row in candidate_rows(r)])
        np.testing.assert_array_equal(encode_columns(spec, columns, memo), expected)
        # At most the limit, or one batch's distinct values when the batch alone is over it.
        assert all(len(ids) <= max(50, len(columns.titles)) for ids in memo._ids)
    with pytest.raises(ValueError, match="another feature spec"):
        encode_columns(REQUEST_SPEC, CandidateColumns.of(requests), memo)


class ReferenceLru:
    """The cache's contract, one id at a time: what the batched table must reproduce."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.rows, self.hits, self.misses = capacity, OrderedDict[str, np.ndarray](), 0, 0

    def lookup(self, ids: Sequence[str], titles: Sequence[str], encode: Encoder) -> np.ndarray:
        missing: dict[str, str] = {}
        for cid, title in zip(ids, titles, strict=True):
            if cid in self.rows:
                self.rows.move_to_end(cid)
            else:
                missing.setdefault(cid, title)
        self.misses += sum(cid in missing for cid in ids)
        self.hits += sum(cid not in missing for cid in ids)
        fresh = dict(zip(missing, encode(list(missing.values())), strict=True)) if missing else {}
        out = np.stack([fresh[cid] if cid in fresh else self.rows[cid] for cid in ids])
        for cid, vector in fresh.items():
            if self.capacity:
                self.rows[cid] = vector
                while len(self.rows) > self.capacity:
                    self.rows.popitem(last=False)
        return out


@given(st.integers(0, 6), st.lists(st.lists(st.sampled_from("abcdefghij"), min_size=1, max_size=8), max_size=12))
def test_the_cache_matches_an_lru_of_one_id_at_a_time(capacity: int, batches: list[list[str]]) -> None:
    cache, reference = EmbeddingCache(capacity), ReferenceLru(capacity)
    got_calls: list[int] = []
    want_calls: list[int] = []
    for ids in batches:
        titles = [cid * (1 + ids.index(cid)) for cid in ids]  # an id's first title is the one encoded
        got = cache.lookup(ids, titles, _encoder(got_calls))
        want = reference.lookup(ids, titles, _encoder(want_calls))
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.float32
        assert list(cache._slots) == list(reference.rows), "the same ids, in the same recency order"
    assert got_calls == want_calls and (cache.hits, cache.misses) == (reference.hits, reference.misses)


def _without(field: str) -> Callable[[dict[str, object]], object]:
    return lambda c: {k: v for k, v in c.items() if k != field}


@pytest.mark.parametrize(("change", "reason", "message"), [
    (lambda c: 1, "malformed_json", "candidates.0: Input should be an object"),
    (lambda c: [c], "malformed_json", "candidates.0: Input should be an object"),
    (lambda c: {**c, "x": 1}, "unknown_field", "candidates.0.x: Extra inputs are not permitted"),
    (_without("bid"), "missing_field", "candidates.0.bid: Field required"),
    (lambda c: {**c, "bid": "1.0"}, "invalid_value", "candidates.0.bid: Input should be a valid number"),
    (lambda c: {**c, "ad_id": "a b"}, "invalid_value", "candidates.0.ad_id: String should match pattern"),
])
def test_candidates_are_plain_dicts_refused_for_the_reasons_models_gave(
    change: Callable[[dict[str, object]], object], reason: str, message: str
) -> None:
    # Candidates are typed dicts (no model object per candidate); their dead letters must not change.
    event = json.loads(next(make_stream("ads").iter_json(1)))
    assert type(decode(AdRequest, json.dumps(event)).candidates[0]) is dict
    event["candidates"][0] = change(event["candidates"][0])
    with pytest.raises(InvalidEvent) as info:
        decode(AdRequest, json.dumps(event))
    assert info.value.reason == reason and message in info.value.detail
