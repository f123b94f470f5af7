"""Shadow, canary and model decisions in a model scorer, driven as the runtime drives them.

The scorer is the documented linear example (docs/models.md); the config and model-events
topics are in-memory :class:`StaticConfig`s the test changes between batches, as an operator
changes the topics while the service runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.agreement import AgreementView
from shared.models.repository import ModelRepository
from shared.runtime.config import StaticConfig
from shared.runtime.metrics import RuntimeMetrics
from shared.runtime.model_scorer import ModelScorer
from shared.runtime.rollout.split import in_canary, key_fraction
from shared.runtime.scorer import Event, LoadContext, Output, Scored
from shared.runtime.state import StateStore
from shared.schemas.rollout import ModelEvent, RolloutPlan
from tests.support.doc_scorer import EXAMPLE
from tests.support.models import publish_linear

SERVICE = "svc"


LinearScorer: Any = EXAMPLE["LinearScorer"]


class ComparedLinear(LinearScorer):  # type: ignore[misc]
    """The documented scorer, with its outputs described for comparison and a key in state per event."""

    def agreement_view(self, output: dict[str, Any]) -> AgreementView | None:
        return AgreementView(scores={"": output["score"]}, decision="up" if output["score"] > 0 else "down")

    def predict(self, batch: Any) -> Any:
        if self.state is not None:
            for e in batch:
                self.state.put(e.partition, e.key, {"seen_by": self.slot.current.manifest.version})
        return super().predict(batch)


def events(n: int, start: int = 0) -> list[Event[Any]]:
    features = EXAMPLE["Features"]
    rng = np.random.default_rng(start)
    return [Event(features(id=f"k{i}", x=rng.normal(size=4).tolist()), f"k{i}", "in", 0, i, 0)
            for i in range(start, start + n)]


@pytest.fixture
def loaded(tmp_path: Path) -> tuple[ModelScorer[Any, Any], StaticConfig, StaticConfig, RuntimeMetrics, StateStore]:
    repo = ModelRepository(tmp_path)
    publish_linear(repo, seed=1)
    publish_linear(repo, seed=2)
    settings = EXAMPLE["LinearSettings"](service_name=SERVICE, output_topic="out", models_dir=tmp_path,
                                         execution_providers=["cpu"], model_version="v0001")
    scorer = ComparedLinear(settings)
    scorer.state = StateStore()
    config, decisions, metrics = StaticConfig(), StaticConfig(), RuntimeMetrics(SERVICE)
    scorer.load(LoadContext(settings=settings, state=scorer.state, config=config, model_events=decisions,
                            model_metrics=metrics))
    return scorer, config, decisions, metrics, scorer.state


def settle(scorer: ModelScorer[Any, Any], done: Any, timeout_s: float = 20.0) -> None:
    """Turn ``between_batches`` until ``done()``: candidates load in a background thread."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the rollout did not settle"
        time.sleep(0.01)
        scorer.between_batches()


def versions(results: Any, topic: str | None = None) -> list[str]:
    return [o.value.model_version for r in results for o in r.outputs if o.topic == topic]


def transaction(state: StateStore, scorer: ModelScorer[Any, Any], batch: list[Event[Any]]) -> Any:
    state.begin()
    results = scorer.score(batch)
    state.commit()
    return results


def test_the_canary_key_hash_is_stable_uniform_and_only_grows_with_the_share() -> None:
    keys = [f"user-{i}" for i in range(20_000)]
    assert key_fraction("user-1") == key_fraction("user-1")  # no per-process salt, unlike hash()
    assert abs(sum(in_canary(k, 0.1) for k in keys) / len(keys) - 0.1) < 0.01
    assert {k for k in keys if in_canary(k, 0.1)} <= {k for k in keys if in_canary(k, 0.3)}
    assert not any(in_canary(k, 0.0) for k in keys) and all(in_canary(k, 1.0) for k in keys)


def test_a_canary_scores_its_share_of_keys_once_each_in_order_with_its_own_lineage(loaded: Any) -> None:
    scorer, config, _, metrics, state = loaded
    config.values["rollout"] = {"mode": "canary", "candidate": "v0002", "share": 0.3}
    settle(scorer, lambda: scorer.rollout.active)
    batch = events(400)
    results = transaction(state, scorer, batch)
    assert len(results) == len(batch) and [r.outputs[0].value.id for r in results] == [e.key for e in batch]
    expected = ["v0002" if in_canary(e.key, 0.3) else "v0001" for e in batch]
    assert versions(results) == expected and 80 < expected.count("v0002") < 160
    models = {o.model.version if o.model else "batch" for r in results for o in r.outputs}
    assert models == {"v0002", "batch"}  # candidate outputs name their version; live ones the batch's
    assert [state.get(0, e.key)["seen_by"] for e in batch] == expected  # each event's state by its scorer
    assert metrics.registry.get_sample_value("shopstream_rollout_share",
                                             {"service": SERVICE, "mode": "canary", "candidate": "v0002"}) == 0.3

    config.values["rollout"] = {"mode": "canary", "candidate": "v0002", "share": 1.0}  # changed at run time
    scorer.between_batches()
    assert set(versions(scorer.score(batch))) == {"v0002"}
    config.values["rollout"] = {"mode": "off"}
    scorer.between_batches()
    assert set(versions(scorer.score(batch))) == {"v0001"} and scorer.rollout.candidate is None
    assert metrics.registry.get_sample_value("shopstream_rollout_share",
                                             {"service": SERVICE, "mode": "canary", "candidate": "v0002"}) is None


def test_a_shadow_adds_the_candidates_outputs_on_the_shadow_topic_and_measures_agreement(loaded: Any) -> None:
    scorer, config, _, metrics, state = loaded
    config.values["rollout"] = {"mode": "shadow", "candidate": "v0002"}
    settle(scorer, lambda: scorer.rollout.active)
    batch = events(300)
    results = transaction(state, scorer, batch)
    assert versions(results) == ["v0001"] * 300 and versions(results, "out.shadow") == ["v0002"] * 300
    shadow = [o for r in results for o in r.outputs if o.topic == "out.shadow"]
    assert all(o.model is not None and o.model.version == "v0002" for o in shadow)
    assert {state.get(0, e.key)["seen_by"] for e in batch} == {"v0001"}, "the shadow's state writes were kept"
    summary = scorer.rollout.agreement.summary()
    live = np.array([r.outputs[0].value.score for r in results])
    theirs = np.array([o.value.score for o in shadow])
    assert summary["score_correlation"] == pytest.approx(np.corrcoef(live, theirs)[0, 1], abs=1e-9)
    assert summary["decision_flip_rate"] == pytest.approx(np.mean((live > 0) != (theirs > 0)))
    labels = {"service": SERVICE, "candidate": "v0002"}
    assert metrics.registry.get_sample_value("shopstream_shadow_agreement",
                                             {**labels, "metric": "score_correlation"}) is not None
    assert metrics.registry.get_sample_value("shopstream_shadow_decision_flips_total", labels) == \
        scorer.rollout.agreement.flips
    assert metrics.registry.get_sample_value("shopstream_shadow_inference_seconds_count", labels) == 1


def test_a_failing_candidate_costs_nothing_but_a_count(loaded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    scorer, config, _, metrics, state = loaded
    config.values["rollout"] = {"mode": "canary", "candidate": "v0002", "share": 0.5}
    settle(scorer, lambda: scorer.rollout.active)
    real = scorer.predict

    def candidate_fails(batch: Any) -> Any:
        if scorer.slot.current.manifest.version == "v0002":
            state.put(0, "poison", {"half": "written"})
            raise RuntimeError("candidate bug")
        return real(batch)

    monkeypatch.setattr(scorer, "predict", candidate_fails)
    for mode in ("canary", "shadow"):
        config.values["rollout"] = {"mode": mode, "candidate": "v0002", "share": 0.5}
        scorer.between_batches()
        results = transaction(state, scorer, events(50))
        assert versions(results) == ["v0001"] * 50 and state.get(0, "poison") is None
        assert metrics.registry.get_sample_value(
            "shopstream_rollout_failures_total", {"service": SERVICE, "mode": mode, "candidate": "v0002"}) == 1


def test_a_decision_on_the_model_events_topic_is_followed_and_pins_the_version(loaded: Any) -> None:
    scorer, config, decisions, metrics, _ = loaded
    config.values["rollout"] = {"mode": "canary", "candidate": "v0002", "share": 0.5}
    settle(scorer, lambda: scorer.rollout.active)
    decisions.values[SERVICE] = event(1, "promoted", "v0002", "v0002", replaced=("v0001",))
    scorer.between_batches()  # the running candidate goes live at once: no load
    assert scorer.model_info.version == "v0002" and scorer.slot.pinned_version == "v0002"
    assert not scorer.rollout.active, "a candidate that is live is no longer a candidate"
    assert set(versions(scorer.score(events(40)))) == {"v0002"}

    decisions.values[SERVICE] = event(2, "rolled_back", "v0001", "v0001")
    settle(scorer, lambda: scorer.model_info.version == "v0001")
    counted = {d: metrics.registry.get_sample_value("shopstream_model_decisions_total",
                                                    {"service": SERVICE, "decision": d, "forced": "false"})
               for d in ("promoted", "rolled_back")}
    assert counted == {"promoted": 1.0, "rolled_back": 1.0}
    assert metrics.registry.get_sample_value("shopstream_model_decision_sequence", {"service": SERVICE}) == 2

    decisions.values[SERVICE] = event(3, "promoted", "v0009", "v0009")  # not in the repository
    for _ in range(50):
        scorer.between_batches()
        time.sleep(0.01)
    assert scorer.model_info.version == "v0001" and scorer.rollout.applied_sequence == 2


def test_a_new_instance_serves_the_decided_version_from_its_first_batch(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    for seed in (1, 2, 3):
        publish_linear(repo, seed=seed)
    settings = EXAMPLE["LinearSettings"](service_name=SERVICE, models_dir=tmp_path, execution_providers=["cpu"])
    scorer = ComparedLinear(settings)
    scorer.state = None
    decided = StaticConfig({SERVICE: event(4, "promoted", "v0002", "v0002")})
    scorer.load(LoadContext(settings=settings, model_events=decided))
    assert scorer.model_info.version == "v0002", "not the newest (v0003): the promoted one"
    scorer.slot.poll_interval_s = 0.0
    scorer.between_batches()
    assert scorer.model_info.version == "v0002" and scorer.rollout.applied_sequence == 4


def test_a_bad_plan_is_ignored_and_the_previous_one_kept(loaded: Any) -> None:
    scorer, config, _, _, _ = loaded
    config.values["rollout"] = {"mode": "shadow", "candidate": "v0002"}
    settle(scorer, lambda: scorer.rollout.active)
    config.values["rollout"] = {"mode": "canary", "share": 2.0}
    scorer.between_batches()
    assert scorer.rollout.plan == RolloutPlan(mode="shadow", candidate="v0002") and scorer.rollout.active


def test_outputs_a_candidate_made_carry_its_lineage_headers() -> None:
    from shared.models.info import ModelInfo
    from shared.runtime.records import model_headers, relabel
    from shared.schemas import headers as h

    live = [*model_headers(ModelInfo("m", "v0001", "a" * 64), "1", "in"), (h.SOURCE_OFFSET, b"7")]
    headers = dict(relabel(live, ModelInfo("m", "v0002", "b" * 64)))
    assert headers[h.MODEL_VERSION] == b"v0002" and headers[h.MODEL_SHA256] == b"b" * 64
    assert headers[h.SOURCE_OFFSET] == b"7" and len(headers) == len(live)


def event(sequence: int, decision: str, version: str, live: str, replaced: tuple[str, ...] = ()) -> dict[str, Any]:
    return ModelEvent(service=SERVICE, decision=decision, version=version, live_version=live,  # type: ignore[arg-type]
                      replaced=replaced, requested_by="test", at_ms=0, sequence=sequence).model_dump(mode="json")


def test_output_carries_no_model_unless_a_candidate_made_it() -> None:
    assert Output(b"{}").model is None and Scored([Output(b"{}")]).outputs[0].model is None


def test_an_instance_that_cannot_load_the_decided_version_starts_on_its_own_and_says_so(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    publish_linear(repo, seed=1)
    settings = EXAMPLE["LinearSettings"](service_name=SERVICE, models_dir=tmp_path, execution_providers=["cpu"])
    scorer = ComparedLinear(settings)
    scorer.state = None
    metrics = RuntimeMetrics(SERVICE)
    decided = StaticConfig({SERVICE: event(2, "promoted", "v0007", "v0007")})  # not in this repository
    scorer.load(LoadContext(settings=settings, model_events=decided, model_metrics=metrics))
    assert scorer.model_info.version == "v0001" and scorer.rollout.applied_sequence == 0
    assert metrics.registry.get_sample_value("shopstream_model_decision_sequence", {"service": SERVICE}) == 0
