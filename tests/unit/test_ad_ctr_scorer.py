"""The ad CTR scorer on the committed default model, with in-memory events (no broker)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from services.ad_ctr import SETTINGS_CLASS, create_scorer
from services.ad_ctr.scorer import AdCtrScorer
from services.ad_ctr.settings import AdCtrSettings
from shared.errors import InvalidEvent, ModelError, ScoringError
from shared.models.session import OnnxModel
from shared.runtime.scorer import Event, LoadContext, Rejected, Scored, ScoreResult
from shared.schemas.ads import AdRequest, CtrScores
from shared.schemas.base import decode
from sim.registry import make_stream

MODELS = Path(__file__).resolve().parents[2] / "models"


def requests(n: int) -> list[AdRequest]:
    return [AdRequest.model_validate(event) for event, _ in make_stream("ads").iter_dicts(n)]


def events(reqs: list[AdRequest]) -> list[Event[AdRequest]]:
    return [Event(value=r, key=r.request_id, topic="ads", partition=0, offset=i, timestamp_ms=r.ts_ms)
            for i, r in enumerate(reqs)]


def scorer(**overrides: object) -> AdCtrScorer:
    fields = {"models_dir": MODELS, "execution_providers": ["cpu"], "intra_op_threads": 1, **overrides}
    settings = SETTINGS_CLASS.model_validate(fields)
    sc = create_scorer(settings)
    sc.load(LoadContext(settings=settings))
    return sc


@pytest.fixture(scope="module")
def loaded() -> AdCtrScorer:
    return scorer()


class Counting:
    """Stands in for an OnnxModel's ``run``: counts calls and rows, then runs the model."""

    def __init__(self, run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]) -> None:
        self.inner = run
        self.calls = 0
        self.rows: list[int] = []

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        self.rows.append(len(next(iter(feeds.values()))))
        return self.inner(feeds)


def count_runs(monkeypatch: pytest.MonkeyPatch, model: OnnxModel) -> Counting:
    counting = Counting(model.run)
    monkeypatch.setattr(model, "run", counting)
    return counting


def scores_of(results: Sequence[ScoreResult]) -> list[CtrScores]:
    """The published records (encoded JSON bytes), read back through their schema."""
    values = [r.outputs[0].value for r in results if isinstance(r, Scored)]
    assert len(values) == len(results) and all(isinstance(v, bytes) for v in values)
    return [CtrScores.model_validate_json(v) for v in values if isinstance(v, bytes)]


def pctrs(results: Sequence[ScoreResult]) -> list[list[float]]:
    """Every request's candidate pCTRs, in order."""
    return [[c.pctr for c in s.candidates] for s in scores_of(results)]


def test_every_candidate_gets_a_pctr_and_ranks_follow_bid_times_pctr(loaded: AdCtrScorer) -> None:
    reqs = requests(40)
    results = loaded.score(events(reqs))
    assert len(results) == len(reqs)
    for req, res, out in zip(reqs, results, scores_of(results), strict=True):
        assert isinstance(res, Scored) and res.outputs[0].key == req.request_id
        assert out.request_id == req.request_id and out.event_ts_ms == req.ts_ms
        assert [c.ad_id for c in out.candidates] == [c["ad_id"] for c in req.candidates]
        assert all(0.0 <= c.pctr <= 1.0 for c in out.candidates)
        by_rank = sorted(out.candidates, key=lambda c: c.rank)
        assert all(a.expected_value >= b.expected_value for a, b in itertools.pairwise(by_rank))
        assert all(math.isclose(c.expected_value, c.bid * c.pctr, rel_tol=1e-9) for c in out.candidates)
        assert out.model_version == loaded.model_info.version


def test_one_ctr_call_per_batch_and_the_text_encoder_only_on_cache_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    sc = scorer()
    ctr = count_runs(monkeypatch, sc.slot.current.model)
    text = count_runs(monkeypatch, sc._text[sc.model_info.version][1])
    reqs = requests(30)
    sc.score(events(reqs))
    n_cands = sum(len(r.candidates) for r in reqs)
    assert ctr.calls == 1 and ctr.rows == [n_cands]
    assert text.calls == 1 and text.rows[0] == len({c["creative_id"] for r in reqs for c in r.candidates})
    sc.score(events(reqs))
    assert ctr.calls == 2 and text.calls == 1  # every creative was cached
    assert sc.cache.hits == n_cands


def test_scores_from_cached_embeddings_equal_uncached_ones() -> None:
    reqs = requests(10)
    n_cands = sum(len(r.candidates) for r in reqs)
    uncached = scorer(embedding_cache_size=0)
    cached = scorer()
    first = cached.score(events(reqs))
    hits_before = cached.cache.hits
    again = cached.score(events(reqs))
    assert cached.cache.hits - hits_before == n_cands, "the second pass must come from the cache"
    expected = pctrs(uncached.score(events(reqs)))
    assert uncached.cache.hits == 0
    for got in (pctrs(first), pctrs(again)):
        for want, have in zip(expected, got, strict=True):
            np.testing.assert_allclose(have, want, rtol=1e-6)


def test_business_limits_reject_with_a_reason_and_the_rest_still_scores() -> None:
    sc = scorer(max_candidates=3)
    good = next(r for r in requests(50) if len(r.candidates) <= 3)
    big = next(r for r in requests(50) if len(r.candidates) > 3)
    cand = good.candidates[0]
    empty = AdRequest.model_construct(**{**dict(good), "candidates": ()})
    nan_bid = AdRequest.model_construct(**{**dict(good), "candidates": ({**cand, "bid": float("nan")},)})
    negative = AdRequest.model_construct(**{**dict(good), "candidates": ({**cand, "bid": -1.0},)})
    results = sc.score(events([big, good, empty, nan_bid, negative, good]))
    assert isinstance(results[1], Scored) and isinstance(results[5], Scored)
    assert [s.request_id for s in scores_of([results[1], results[5]])] == [good.request_id] * 2
    reasons = [r.reason for r in results if isinstance(r, Rejected)]
    assert reasons == ["too_many_candidates", "no_candidates", "invalid_bid", "invalid_bid"]


@pytest.mark.parametrize(("change", "reason"), [
    ({"candidates": []}, "invalid_value"),
    ({"bid": float("nan")}, "non_finite_number"),
    ({"bid": -0.5}, "invalid_value"),
])
def test_schema_refuses_empty_lists_and_bad_bids_before_the_scorer(change: dict[str, object], reason: str) -> None:
    import json

    event = json.loads(make_stream("ads").iter_json(1).__next__())
    if "bid" in change:
        event["candidates"][0]["bid"] = change["bid"]
    else:
        event.update(change)
    with pytest.raises(InvalidEvent) as info:
        decode(AdRequest, json.dumps(event))
    assert info.value.reason == reason


def test_a_ctr_version_whose_text_encoder_is_missing_is_refused(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(MODELS / "ad_ctr", tmp_path / "ad_ctr")
    settings = AdCtrSettings(models_dir=tmp_path, execution_providers=["cpu"])
    with pytest.raises(ModelError, match="no usable version"):
        AdCtrScorer(settings).load(LoadContext(settings=settings))


def test_exported_graph_is_calibrated_monotonically(loaded: AdCtrScorer) -> None:
    model = loaded.slot.current.model
    rng = np.random.default_rng(0)
    feeds = model.zeros(500)
    feeds["sparse"] = np.repeat(feeds["sparse"][:1], 500, axis=0)
    feeds["text_emb"] = rng.uniform(-1, 1, feeds["text_emb"].shape).astype(np.float32)
    out = model.run(feeds)
    order = np.argsort(out["logit"])
    assert (np.diff(out["pctr"][order]) >= -1e-7).all()
    cal = loaded.slot.current.manifest.preprocessing["calibration"]
    expected = 1 / (1 + np.exp(-(cal["a"] * out["logit"] + cal["b"])))
    np.testing.assert_allclose(out["pctr"], expected, atol=1e-6)


def test_business_metrics_observe_the_pctrs_of_the_last_scored_batch(loaded: AdCtrScorer) -> None:
    from prometheus_client import CollectorRegistry

    from shared.runtime.metrics import BusinessMetrics

    metrics = BusinessMetrics(CollectorRegistry())
    reqs = requests(12)
    results = loaded.score(events(reqs))
    loaded.record_business_metrics("ad_ctr", results, metrics)
    child = metrics.score.labels("ad_ctr")
    observed = sum(bucket.get() for bucket in child._buckets)
    assert observed == sum(len(r.candidates) for r in reqs)
    assert loaded.score([]) == []
    assert child._sum.get() == pytest.approx(sum(p for ps in pctrs(results) for p in ps))


def test_a_non_finite_pctr_fails_the_batch_instead_of_publishing_null(monkeypatch: pytest.MonkeyPatch) -> None:
    sc = scorer()
    model = sc.slot.current.model
    run = model.run

    def broken(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(run(feeds))
        out["pctr"] = np.full_like(out["pctr"], np.nan)
        return out

    monkeypatch.setattr(model, "run", broken)
    with pytest.raises(ScoringError, match="non-finite"):
        sc.score(events(requests(3)))
