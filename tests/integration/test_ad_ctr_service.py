"""The ad CTR service against a real broker: scores, rankings, dead letters, cache throughput."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from services.ad_ctr.scorer import AdCtrScorer
from services.ad_ctr.settings import AdCtrSettings
from shared.schemas import headers as h
from shared.schemas.ads import AdRequest, CtrScores
from shared.settings import KafkaSettings, MetricsSettings, RuntimeSettings
from sim.registry import make_stream
from tests.support.factories import GroupIdFactory, TopicFactory
from tools.supervisor import collect, produce, service_in_thread

pytestmark = pytest.mark.integration

MODELS = Path(__file__).resolve().parents[2] / "models"
MAX_CANDIDATES = 40


def ad_settings(bootstrap: str, topic: str, group: str, **overrides: object) -> AdCtrSettings:
    """The service on ``topic`` scoring into ``<topic>.scores``; ``overrides`` replace any AdCtrSettings field."""
    return AdCtrSettings.model_validate({
        "input_topic": topic, "output_topic": f"{topic}.scores", "group_id": group, "models_dir": MODELS,
        "kafka": KafkaSettings(bootstrap_servers=bootstrap), "metrics": MetricsSettings(host="127.0.0.1", port=0),
        "runtime": RuntimeSettings(session_timeout_ms=6000, max_batch_size=128), "execution_providers": ["cpu"],
        "intra_op_threads": 1, "max_candidates": MAX_CANDIDATES, **overrides,
    })


def sim_events(n: int, max_candidates: int = MAX_CANDIDATES) -> list[dict[str, Any]]:
    """Requests with 1..max_candidates candidates each (the schema allows up to 50)."""
    return [e for e, _ in make_stream("ads", max_candidates=max_candidates).iter_dicts(n)]


def records(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return [(str(e["request_id"]).encode(), json.dumps(e).encode()) for e in events]


def bad_events() -> dict[str, tuple[dict[str, Any], str]]:
    big = next(e for e in sim_events(400, 50) if len(e["candidates"]) > MAX_CANDIDATES)
    base = sim_events(1)[0]
    cand = base["candidates"][0]
    return {
        "empty": ({**base, "request_id": "bad-empty", "candidates": []}, "invalid_value"),
        "too many": ({**big, "request_id": "bad-big"}, "too_many_candidates"),
        "nan bid": ({**base, "request_id": "bad-nan", "candidates": [{**cand, "bid": float("nan")}]},
                    "non_finite_number"),
        "negative bid": ({**base, "request_id": "bad-neg", "candidates": [{**cand, "bid": -1.0}]},
                         "invalid_value"),
    }


def test_requests_are_scored_and_ranked_and_bad_ones_dead_lettered(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory
) -> None:
    topic = topic_factory(partitions=2)
    good = [e for e in sim_events(300) if len(e["candidates"]) <= MAX_CANDIDATES]
    bad = bad_events()
    produce(kafka_bootstrap, topic, records(good) + records([e for e, _ in bad.values()]))
    settings = ad_settings(kafka_bootstrap, topic, group_id_factory())
    with service_in_thread(settings, AdCtrScorer(settings)):
        out = collect(kafka_bootstrap, [f"{topic}.scores", f"{topic}.dlq"],
                      lambda rs: len(rs) >= len(good) + len(bad), timeout_s=120)
    scores = [CtrScores.model_validate_json(r.value or b"") for r in out if r.topic == f"{topic}.scores"]
    dead = [r for r in out if r.topic == f"{topic}.dlq"]
    assert len(scores) == len(good)
    requests = {str(e["request_id"]): AdRequest.model_validate(e) for e in good}
    assert {len(r.candidates) for r in requests.values()} >= {1, MAX_CANDIDATES}
    for s in scores:
        req = requests[s.request_id]
        assert [c.ad_id for c in s.candidates] == [c["ad_id"] for c in req.candidates]
        assert all(0.0 <= c.pctr <= 1.0 for c in s.candidates)
        ranked = sorted(s.candidates, key=lambda c: c.rank)
        assert all(a.bid * a.pctr >= b.bid * b.pctr for a, b in itertools.pairwise(ranked))
    reasons = {json.loads(r.value or b"{}")["request_id"]: r.headers[h.ERROR_REASON].decode() for r in dead}
    assert reasons == {str(e["request_id"]): reason for e, reason in bad.values()}
    assert all(r.headers[h.ERROR_MESSAGE] for r in dead)


def _run(bootstrap: str, topic: str, group: str, n: int, cache_size: int) -> tuple[float, dict[str, list[float]]]:
    """Scorer seconds (the runtime's inference histogram, so broker start-up is left out) and pCTRs."""
    output = f"{topic}.scores.cache{cache_size}"  # one output topic per run: collect reads from the start
    settings = ad_settings(bootstrap, topic, group, embedding_cache_size=cache_size, output_topic=output)
    with service_in_thread(settings, AdCtrScorer(settings)) as app:
        out = collect(bootstrap, [output], lambda rs: len(rs) >= n, timeout_s=180)
        seconds = sum(sample.value for metric in app.metrics.registry.collect() for sample in metric.samples
                      if sample.name == "shopstream_inference_seconds_sum")
    pctrs = {s.request_id: [c.pctr for c in s.candidates]
             for s in (CtrScores.model_validate_json(r.value or b"") for r in out)}
    return float(seconds or 0.0), pctrs


def test_throughput_with_and_without_the_creative_cache_gives_the_same_scores(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory
) -> None:
    topic = topic_factory(partitions=1)
    events = sim_events(1500)
    produce(kafka_bootstrap, topic, records(events))
    n_cands = sum(len(e["candidates"]) for e in events)
    cached_s, cached = _run(kafka_bootstrap, topic, group_id_factory(), len(events), 50_000)
    uncached_s, uncached = _run(kafka_bootstrap, topic, group_id_factory(), len(events), 0)
    print(f"\nad_ctr over the broker, {len(events)} requests / {n_cands} candidates (scorer time): "
          f"cache on {n_cands / cached_s:,.0f} cand/s, cache off {n_cands / uncached_s:,.0f} cand/s")
    assert cached.keys() == uncached.keys() and len(cached) == len(events)
    assert cached_s > 0 and uncached_s > 0
    for rid, p in cached.items():
        assert p == pytest.approx(uncached[rid], rel=1e-5)
