"""The ad CTR scorer on the committed default model, with in-memory events (no broker)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from services.ad_ctr import SETTINGS_CLASS, create_scorer
from services.ad_ctr.scorer import AdCtrScorer
from services.ad_ctr.settings import AdCtrSettings
from shared.errors import InvalidEvent, ModelError
from shared.runtime.scorer import Event, LoadContext, Rejected, Scored
from shared.schemas.ads import AdCandidate, AdRequest, CtrScores
from shared.schemas.base import decode
from sim.registry import make_stream

MODELS = Path(__file__).resolve().parents[2] / "models"


def requests(n: int) -> list[AdRequest]:
    return [e for e, _ in make_stream("ads").iter_events(n)]  # type: ignore[misc]


def events(reqs: list[AdRequest]) -> list[Event[AdRequest]]:
    return [Event(value=r, key=r.request_id, topic="ads", partition=0, offset=i, timestamp_ms=r.ts_ms)
            for i, r in enumerate(reqs)]


def scorer(**overrides: object) -> AdCtrScorer:
    settings = SETTINGS_CLASS(models_dir=MODELS, execution_providers=["cpu"], intra_op_threads=1, **overrides)
    sc = create_scorer(settings)
    sc.load(LoadContext(settings=settings))
    return sc


@pytest.fixture(scope="module")
def loaded() -> AdCtrScorer:
    return scorer()


class Counting:
    """Wraps an OnnxModel's ``run`` to count calls and rows."""

    def __init__(self, model: object) -> None:
        self.model, self.calls, self.rows = model, 0, []
        self.inner = model.run  # type: ignore[attr-defined]
        model.run = self  # type: ignore[attr-defined]

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        self.rows.append(len(next(iter(feeds.values()))))
        return self.inner(feeds)  # type: ignore[no-any-return]


def test_every_candidate_gets_a_pctr_and_ranks_follow_bid_times_pctr(loaded: AdCtrScorer) -> None:
    reqs = requests(40)
    results = loaded.score(events(reqs))
    assert len(results) == len(reqs)
    for req, res in zip(reqs, results, strict=True):
        assert isinstance(res, Scored)
        out = res.outputs[0].value
        assert isinstance(out, CtrScores) and out.request_id == req.request_id
        assert [c.ad_id for c in out.candidates] == [c.ad_id for c in req.candidates]
        assert all(0.0 <= c.pctr <= 1.0 for c in out.candidates)
        by_rank = sorted(out.candidates, key=lambda c: c.rank)
        assert all(a.expected_value >= b.expected_value for a, b in itertools.pairwise(by_rank))
        assert all(math.isclose(c.expected_value, c.bid * c.pctr, rel_tol=1e-9) for c in out.candidates)
        assert out.model_version == loaded.model_info.version


def test_one_ctr_call_per_batch_and_the_text_encoder_only_on_cache_misses() -> None:
    sc = scorer()
    meta_version = sc.model_info.version
    ctr = Counting(sc._slot.current.model)  # type: ignore[union-attr]
    text = Counting(sc._text[meta_version][1])
    reqs = requests(30)
    sc.score(events(reqs))
    n_cands = sum(len(r.candidates) for r in reqs)
    assert ctr.calls == 1 and ctr.rows == [n_cands]
    assert text.calls == 1 and text.rows[0] == len({c.creative_id for r in reqs for c in r.candidates})
    sc.score(events(reqs))
    assert ctr.calls == 2 and text.calls == 1  # every creative was cached
    assert sc.cache.hits == n_cands


def test_cached_and_uncached_scores_are_identical(loaded: AdCtrScorer) -> None:
    reqs = requests(10)
    cold = scorer(embedding_cache_size=0).score(events(reqs))
    warm = loaded.score(events(reqs))
    loaded.score(events(reqs))
    for a, b in zip(cold, warm, strict=True):
        pa = [c.pctr for c in a.outputs[0].value.candidates]  # type: ignore[union-attr,attr-defined]
        pb = [c.pctr for c in b.outputs[0].value.candidates]  # type: ignore[union-attr,attr-defined]
        np.testing.assert_allclose(pa, pb, rtol=1e-6)


def test_business_limits_reject_with_a_reason_and_the_rest_still_scores() -> None:
    sc = scorer(max_candidates=3)
    good = next(r for r in requests(50) if len(r.candidates) <= 3)
    big = next(r for r in requests(50) if len(r.candidates) > 3)
    cand = good.candidates[0]
    empty = AdRequest.model_construct(**{**dict(good), "candidates": ()})
    nan_bid = AdRequest.model_construct(**{**dict(good), "candidates": (
        AdCandidate.model_construct(**{**dict(cand), "bid": float("nan")}),)})
    negative = AdRequest.model_construct(**{**dict(good), "candidates": (
        AdCandidate.model_construct(**{**dict(cand), "bid": -1.0}),)})
    results = sc.score(events([big, good, empty, nan_bid, negative]))
    assert isinstance(results[1], Scored)
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
    model = loaded._slot.current.model  # type: ignore[union-attr]
    rng = np.random.default_rng(0)
    feeds = model.zeros(500)
    feeds["sparse"] = np.repeat(feeds["sparse"][:1], 500, axis=0)
    feeds["text_emb"] = rng.uniform(-1, 1, feeds["text_emb"].shape).astype(np.float32)
    out = model.run(feeds)
    order = np.argsort(out["logit"])
    assert (np.diff(out["pctr"][order]) >= -1e-7).all()
    cal = loaded._slot.current.manifest.preprocessing["calibration"]  # type: ignore[union-attr]
    expected = 1 / (1 + np.exp(-(cal["a"] * out["logit"] + cal["b"])))
    np.testing.assert_allclose(out["pctr"], expected, atol=1e-6)
