"""The live-quality monitor in process: joins in either order, measures beside baselines, expiry."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from services.monitor import quality as q
from services.monitor.scorer import MonitorScorer
from services.monitor.settings import MonitorSettings
from shared.runtime.metrics import BusinessMetrics
from shared.runtime.records import FeedbackTap
from shared.runtime.scorer import Event, LoadContext, Rejected, Scored
from shared.runtime.scoring import score_batch
from shared.runtime.state import StateStore
from shared.schemas.feedback import FeedbackRecord, JoinedOutcome

T0 = 1_767_225_600_000  # 2026-01-01


class Monitor:
    """A monitor scorer with its state store and registry, fed FeedbackRecord dicts."""

    def __init__(self, **settings: Any) -> None:
        self.settings = MonitorSettings(refresh_interval_s=0, **settings)
        self.scorer = MonitorScorer(self.settings)
        self.state = StateStore()
        self.scorer.load(LoadContext(settings=self.settings, state=self.state))
        self.registry = CollectorRegistry()
        self.business = BusinessMetrics(self.registry)
        self.offset = 0

    def feed(self, records: list[tuple[str, dict[str, Any]]], partition: int = 0) -> list[Any]:
        events = []
        for key, value in records:
            record = FeedbackRecord.model_validate_json(json.dumps(value))
            events.append(Event(record, key, "shop.feedback", partition, self.offset, record.ts_ms))
            self.offset += 1
        results = score_batch(self.scorer, events, self.state)
        self.scorer.record_business_metrics("monitor", results, self.business)
        return list(results)

    def gauge(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def joined(results: list[Any]) -> list[JoinedOutcome]:
    return [o.value for r in results if isinstance(r, Scored) for o in r.outputs
            if isinstance(o.value, JoinedOutcome)]


def ad_prediction(request: str, scores: dict[str, float], ts: int, version: str = "v0001") -> dict[str, Any]:
    candidates = [{"ad_id": ad, "pctr": p, "bid": 1.0, "expected_value": p, "rank": i + 1}
                  for i, (ad, p) in enumerate(scores.items())]
    return {"kind": "prediction", "service": "ad_ctr", "ts_ms": ts,
            "record": {"request_id": request, "candidates": candidates, "model_version": version,
                       "event_ts_ms": ts}}


def ad_outcome(request: str, clicks: dict[str, bool], ts: int) -> dict[str, Any]:
    return {"kind": "outcome", "service": "ad_ctr", "ts_ms": ts,
            "record": {"request_id": request, "shown": [{"ad_id": a, "clicked": c} for a, c in clicks.items()]}}


def fraud_prediction(txn: str, p: float, decision: str, ts: int, version: str = "v0001") -> dict[str, Any]:
    return {"kind": "prediction", "service": "fraud", "ts_ms": ts,
            "record": {"txn_id": txn, "user_id": "u1", "probability": p, "decision": decision,
                       "model_version": version, "event_ts_ms": ts}}


def fraud_outcome(txn: str, fraud: bool, ts: int) -> dict[str, Any]:
    return {"kind": "outcome", "service": "fraud", "ts_ms": ts,
            "record": {"txn_id": txn, "user_id": "u1", "fraud": fraud}}


def reco(user: str, item: int, items: list[int], ts: int, cold: bool = False, version: str = "v0001") -> dict[str, Any]:
    return {"kind": "prediction", "service": "recommendation", "ts_ms": ts,
            "record": {"user_id": user, "items": [{"item_id": i, "score": 1.0} for i in items], "k": 10,
                       "model_version": version, "cold_start": cold,
                       "source": {"ts_ms": ts, "item_id": item, "event_type": "view", "session_id": "s1"}}}


def test_measures_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(500), 2)  # rounded: ties must count one half
    labels = rng.random(500) < scores * 0.6
    assert q.auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert q.average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert q.log_loss(scores, labels) == pytest.approx(log_loss(labels, np.clip(scores, q.EPS, 1 - q.EPS)), abs=1e-9)
    assert np.isnan(q.auc([0.1, 0.2], [True, True]))


def test_calibration_wape_and_ranks_by_hand() -> None:
    assert q.expected_calibration_error([0.1, 0.1, 0.9, 0.9], [0, 0, 1, 1], bins=2) == pytest.approx(0.1)
    assert q.wape([10, 0], [8, 2]) == pytest.approx(0.4)
    hit, ndcg = q.rank_gain([5, 7, 9], 7)
    assert hit == 1.0
    assert ndcg == pytest.approx(1 / np.log2(3))
    assert q.rank_gain([5, 7, 9], 4) == (0.0, 0.0)


def test_an_ad_pair_joins_whichever_half_arrives_first() -> None:
    m = Monitor()
    assert joined(m.feed([("r1", ad_prediction("r1", {"a": 0.2, "b": 0.1}, T0))])) == []
    out = joined(m.feed([("r1", ad_outcome("r1", {"a": True, "b": False}, T0 + 3000))]))
    assert [(o.join_id, o.values["clicks"], o.observed_at_ms - o.predicted_at_ms) for o in out] == [("r1", 1.0, 3000)]
    assert joined(m.feed([("r2", ad_outcome("r2", {"a": False}, T0 + 5000))])) == []
    assert [o.join_id for o in joined(m.feed([("r2", ad_prediction("r2", {"a": 0.3}, T0 + 4000))]))] == ["r2"]
    assert len(m.state) == 0  # a completed pair leaves nothing behind
    assert m.gauge("shopstream_live_outcomes_total", service="ad_ctr", model_version="v0001") == 2
    assert m.gauge("shopstream_live_window", service="ad_ctr", model_version="v0001") == 3


def test_a_good_ad_model_beats_the_base_rate_and_a_shuffled_one_does_not() -> None:
    rng = np.random.default_rng(0)
    m = Monitor()
    for i in range(3000):
        ctr = float(rng.uniform(0.01, 0.3))
        clicked = bool(rng.random() < ctr)
        good, bad = ctr, float(rng.uniform(0.01, 0.3))
        m.feed([(f"g{i}", ad_prediction(f"g{i}", {"a": good}, T0 + i, "good")),
                (f"b{i}", ad_prediction(f"b{i}", {"a": bad}, T0 + i, "bad")),
                (f"g{i}", ad_outcome(f"g{i}", {"a": clicked}, T0 + i + 10)),
                (f"b{i}", ad_outcome(f"b{i}", {"a": clicked}, T0 + i + 10))])
    measures = m.scorer.measures()
    good_model, good_base = measures[("ad_ctr", "good")]
    bad_model, bad_base = measures[("ad_ctr", "bad")]
    assert good_model["auc"] > 0.65 > 0.55 > good_base["auc"]
    assert good_model["log_loss"] < good_base["log_loss"] < bad_model["log_loss"]
    assert abs(bad_model["auc"] - 0.5) < 0.05
    assert good_model["ece"] < 0.03
    assert m.gauge("shopstream_live_quality", service="ad_ctr", model_version="good", metric="auc") == good_model["auc"]
    assert m.gauge("shopstream_live_quality_baseline", service="ad_ctr", model_version="bad",
                   metric="log_loss") == bad_base["log_loss"]


def test_fraud_recall_at_the_thresholds_and_precision_recall_area() -> None:
    m = Monitor()
    cases = [("t1", 0.9, "decline", True), ("t2", 0.6, "review", True), ("t3", 0.1, "approve", True),
             ("t4", 0.2, "approve", False), ("t5", 0.05, "approve", False), ("t6", 0.7, "review", False)]
    m.feed([("u1", fraud_prediction(t, p, d, T0)) for t, p, d, _ in cases])
    m.feed([("u1", fraud_outcome(t, f, T0 + 60_000)) for t, _, _, f in cases])
    model, baseline = m.scorer.measures()[("fraud", "v0001")]
    assert model["recall_review"] == pytest.approx(2 / 3)
    assert model["recall_decline"] == pytest.approx(1 / 3)
    labels = [f for *_, f in cases]
    assert model["pr_auc"] == pytest.approx(average_precision_score(labels, [p for _, p, _, _ in cases]))
    assert baseline["pr_auc"] == model["fraud_rate"] == 0.5


def pricing_prediction(sku: str, ts: int, rec: float, cur: float, units_rec: float, units_cur: float) -> dict[str, Any]:
    def outcome(price: float, units: float) -> dict[str, float]:
        return {"price": price, "units": units, "revenue": price * units, "profit": units * (price - 5)}

    return {"kind": "prediction", "service": "pricing", "ts_ms": ts,
            "record": {"sku": sku, "recommended_price": rec, "current_price": cur,
                       "at_recommended": outcome(rec, units_rec), "at_current": outcome(cur, units_cur),
                       "elasticity": -2.0, "reason": "test", "model_version": "v0001", "event_ts_ms": ts}}


def sales(sku: str, ts: int, price: float, units: float, oracle: float, at_current: float) -> dict[str, Any]:
    return {"kind": "outcome", "service": "pricing", "ts_ms": ts + 1000,
            "record": {"sku": sku, "event_ts_ms": ts, "price": price, "units": units, "unit_cost": 5.0,
                       "oracle_profit": oracle, "profit_at_current": at_current}}


def test_pricing_judges_the_forecast_at_the_charged_price_against_last_periods_units() -> None:
    m = Monitor()
    m.feed([("s1", pricing_prediction("s1", T0, rec=12.0, cur=10.0, units_rec=40, units_cur=50)),
            ("s1", sales("s1", T0, price=12.0, units=50, oracle=400, at_current=240))])
    m.feed([("s1", pricing_prediction("s1", T0 + 10, rec=11.0, cur=12.0, units_rec=45, units_cur=38)),
            ("s1", sales("s1", T0 + 10, price=11.0, units=40, oracle=300, at_current=250))])
    model, baseline = m.scorer.measures()[("pricing", "v0001")]
    # only the second period has last period's units (50): forecast 45 vs 40 sold, naive 50 vs 40
    assert model["wape"] == pytest.approx(5 / 40)
    assert baseline["wape"] == pytest.approx(10 / 40)
    assert model["profit_vs_oracle"] == pytest.approx((50 * 7 + 40 * 6) / 700)
    assert baseline["profit_vs_oracle"] == pytest.approx(490 / 700)
    assert len(m.state) == 1  # the SKU's last units sold stay for the next period's baseline


def test_recommendation_lists_are_judged_on_the_next_click_on_another_item() -> None:
    m = Monitor()
    m.feed([("u1", reco("u1", 1, [2, 3, 4], T0)),
            ("u1", reco("u1", 1, [5, 2, 6], T0 + 1)),  # a cart of item 1: both lists wait for item != 1
            ("u2", reco("u2", 9, [8], T0 + 2, cold=True))])
    out = joined(m.feed([("u1", reco("u1", 2, [7], T0 + 5))]))
    assert [(o.values["hit"], round(o.values["ndcg"] or 0, 4)) for o in out] == [(1.0, 1.0), (1.0, 0.6309)]
    out = joined(m.feed([("u1", reco("u1", 3, [7], T0 + 9)), ("u2", reco("u2", 4, [1], T0 + 9))]))
    assert [o.values["hit"] for o in out] == [0.0]  # u2's cold list is not the model's to judge
    model, baseline = m.scorer.measures()[("recommendation", "v0001")]
    assert model["hit_at_10"] == pytest.approx(2 / 3)
    assert model["coverage"] == pytest.approx(len({2, 3, 4, 5, 6, 7, 1}) / 5000)
    assert 0.0 <= baseline["hit_at_10"] <= 1.0


def test_popularity_is_the_baseline_on_the_same_clicks() -> None:
    m = Monitor()
    m.feed([(f"u{i}", reco(f"u{i}", 42, [1], T0 + i)) for i in range(5)])  # item 42 becomes the most popular
    m.feed([("u0", reco("u0", 7, [1], T0 + 10))])
    m.feed([("u1", reco("u1", 42, [1], T0 + 11))])  # same item as before: nothing judged
    m.feed([("u1", reco("u1", 8, [1], T0 + 12)), ("u1", reco("u1", 42, [9], T0 + 13))])
    model, baseline = m.scorer.measures()[("recommendation", "v0001")]
    assert model["hit_at_10"] == 0.0
    # judged: u0's list on 7, u1's two lists on 8, u1's list of 8 on 42: popular [42, ...] hit the last
    assert baseline["hit_at_10"] == pytest.approx(1 / 4)


def test_halves_that_wait_longer_than_the_wait_expire_and_are_counted() -> None:
    m = Monitor(max_wait_s=60)
    m.feed([("r1", ad_prediction("r1", {"a": 0.1}, T0)), ("r9", ad_outcome("r9", {"a": True}, T0))])
    assert len(m.state) == 2
    m.feed([("r2", ad_prediction("r2", {"a": 0.1}, T0 + 59_000))])
    assert len(m.state) == 3
    m.feed([("r3", ad_prediction("r3", {"a": 0.1}, T0 + 61_000))])
    assert len(m.state) == 2  # r1 and r9 are gone, r2 and r3 still wait
    assert m.gauge("shopstream_live_unmatched_total", service="ad_ctr", reason="prediction_expired") == 1
    assert m.gauge("shopstream_live_unmatched_total", service="ad_ctr", reason="outcome_expired") == 1
    # a late outcome of an expired prediction waits in turn, rather than joining
    assert joined(m.feed([("r1", ad_outcome("r1", {"a": True}, T0 + 62_000))])) == []


def test_a_restarted_monitor_expires_what_it_restored() -> None:
    m = Monitor(max_wait_s=60)
    m.feed([("u1", fraud_prediction("t1", 0.5, "review", T0))])
    restarted = Monitor(max_wait_s=60)
    restarted.state.apply_changelog(0, [(k.encode(), json.dumps(v).encode())
                                        for k, v in m.state.snapshot(0).items()])
    restarted.scorer.on_assign([0])
    restarted.feed([("u2", fraud_prediction("t2", 0.5, "review", T0 + 120_000))])
    assert restarted.gauge("shopstream_live_unmatched_total", service="fraud", reason="prediction_expired") == 1


def test_malformed_halves_go_to_the_dead_letter_topic_with_their_reason() -> None:
    m = Monitor()
    bad = ad_prediction("r1", {"a": 0.1}, T0)
    bad["record"]["candidates"][0]["pctr"] = 1.5
    results = m.feed([("r1", bad), ("u1", {**reco("u1", 1, [2], T0), "kind": "outcome"}),
                      ("r2", ad_prediction("r2", {"a": 0.1}, T0))])
    assert isinstance(results[0], Rejected) and results[0].reason == "invalid_prediction"
    assert "candidates.0.pctr" in results[0].detail
    assert isinstance(results[1], Rejected) and results[1].reason == "unexpected_outcome"
    assert isinstance(results[2], Scored)


def test_the_runtime_copy_of_an_output_is_a_feedback_record_holding_it_verbatim() -> None:
    output = json.dumps(ad_prediction("r1", {"a": 0.1}, T0)["record"]).encode()
    copy = FeedbackTap("shop.feedback", "ad_ctr").wrap(output, T0)
    record = FeedbackRecord.model_validate_json(copy)
    assert (record.kind, record.service, record.ts_ms) == ("prediction", "ad_ctr", T0)
    assert record.record == json.loads(output)
