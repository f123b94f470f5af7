"""The pricing scorer's batch-native path: a batch prices every request as scoring it alone would."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from services.pricing.decisions import round4
from services.pricing.history import DAY_MS
from services.pricing.scorer import PricingScorer
from services.pricing.settings import PricingSettings
from shared.runtime.config import StaticConfig
from shared.runtime.metrics import BusinessMetrics
from shared.runtime.scorer import Event, LoadContext, Rejected, Scored, ScoreResult
from shared.runtime.scoring import score_batch
from shared.runtime.state import StateStore
from shared.schemas.pricing import PricingDecision, PricingRequest
from sim.pricing import PricingSim
from sim.world import World
from tests.support.golden import numbers_close

MODELS = Path(__file__).resolve().parents[2] / "models"
CONFIG: dict[str, dict[str, Any]] = {
    "sku00001": {"fixed_price": 3.49},
    "sku00002": {"kill_switch": True, "reason": "recall"},
    "sku00003": {"min_margin": 0.6, "max_change_per_decision": 0.02},
    "sku00004": {"floor": 1.0, "ceiling": 2.0},
}


def scorer(config: StaticConfig | None = None) -> tuple[PricingScorer, StateStore]:
    s = PricingSettings(models_dir=MODELS, config_topic=None, execution_providers=["cpu"])
    state = StateStore()
    sc = PricingScorer(s)
    sc.load(LoadContext(settings=s, state=state, config=config or StaticConfig()))
    return sc, state


def requests(count: int, skus: int) -> list[PricingRequest]:
    """Sim requests folded onto a few SKUs, an hour apart, so SKUs repeat within a batch and across days."""
    start = (1_700_000_000_000 // DAY_MS + 1) * DAY_MS - 5 * 3_600_000
    return [
        PricingRequest.model_validate({**e, "sku": f"sku{i % skus:05d}", "ts_ms": start + i * 3_600_000 // 4})
        for i, (e, _) in enumerate(PricingSim(World.build()).iter_dicts(count))
    ]


def events(reqs: list[PricingRequest]) -> list[Event[PricingRequest]]:
    return [Event(r, r.sku, "pricing.requests", zlib.crc32(r.sku.encode()) % 3, i, r.ts_ms) for i, r in enumerate(reqs)]


def one_by_one(sc: PricingScorer, state: StateStore, batch: list[Event[PricingRequest]]) -> list[ScoreResult]:
    return [result for event in batch for result in score_batch(sc, [event], state)]


@pytest.mark.parametrize("config", [None, StaticConfig(CONFIG), StaticConfig({"*": {"max_change_per_day": 0.05}})])
def test_a_batch_decides_and_remembers_what_one_request_at_a_time_would(config: StaticConfig | None) -> None:
    batch = events(requests(160, skus=12))
    together, together_state = scorer(config)
    alone, alone_state = scorer(config)
    batched, single = score_batch(together, batch, together_state), one_by_one(alone, alone_state, batch)
    # The same prices, reasons and guardrails; the model's floats may differ in the last bits between
    # a batch of one and a batch of many (its kernels block differently).
    assert list(numbers_close(described(batched), described(single), tolerance=1e-6)) == []
    assert [together_state.snapshot(p) for p in range(3)] == [alone_state.snapshot(p) for p in range(3)]


def test_controls_apply_to_their_own_sku_only() -> None:
    sc, state = scorer(StaticConfig(CONFIG))
    batch = events([r.model_copy(update={"sku": f"sku0000{i % 6}"}) for i, r in enumerate(requests(12, skus=12))])
    results = score_batch(sc, batch, state)
    decisions = {e.value.sku: decision(r) for e, r in zip(batch, results, strict=True) if isinstance(r, Scored)}
    assert decisions["sku00001"].bound_by == ("override",) and "fixed price 3.49" in decisions["sku00001"].reason
    assert decisions["sku00002"].bound_by == ("kill_switch",) and "recall" in decisions["sku00002"].reason
    assert decisions["sku00002"].recommended_price == decisions["sku00002"].current_price
    assert not {"override", "kill_switch"} & {name for s in ("sku00000", "sku00005") for name in decisions[s].bound_by}


def test_an_unpriceable_request_is_rejected_in_its_place_and_still_remembered() -> None:
    sc, state = scorer()
    reqs = requests(5, skus=5)
    reqs[2] = reqs[2].model_copy(update={"floor": 90.0, "ceiling": 95.0, "current_price": 10.0, "unit_cost": 91.0})
    results = score_batch(sc, events(reqs), state)
    assert [type(r) for r in results] == [Scored, Scored, Rejected, Scored, Scored]
    assert isinstance(results[2], Rejected) and results[2].reason == "unpriceable"
    assert "min_margin" in results[2].detail and "ceiling" in results[2].detail
    [kept] = [v for p in range(3) for k, v in state.snapshot(p).items() if k == reqs[2].sku]
    assert isinstance(kept, dict) and kept["seen_price"] == 10.0 and "last_price" not in kept


def test_a_batch_of_only_unpriceable_requests_never_calls_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    sc, state = scorer()
    monkeypatch.setattr(sc.slot.current.model, "run", lambda feeds: pytest.fail("the model ran"))
    req = requests(1, skus=1)[0].model_copy(update={"floor": 90.0, "ceiling": 95.0, "unit_cost": 91.0})
    assert [r.reason for r in score_batch(sc, events([req]), state) if isinstance(r, Rejected)] == ["unpriceable"]


def test_business_metrics_observe_the_price_changes_of_the_last_scored_batch() -> None:
    sc, state = scorer()
    metrics = BusinessMetrics(CollectorRegistry())
    results = score_batch(sc, events(requests(40, skus=40)), state)
    sc.record_business_metrics("pricing", results, metrics)
    changes = [d.recommended_price / d.current_price - 1 for d in map(decision, results)]
    child = metrics.price_change.labels("pricing")
    assert sum(bucket.get() for bucket in child._buckets) == len(changes)
    assert child._sum.get() == pytest.approx(sum(changes))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.floats(0.0, 1e7, allow_nan=False),
    st.integers(0, 10**11).map(lambda n: n / 1e4 + 0.00005),  # halfway cases, as near as a float gets
    st.integers(0, 10**9).map(lambda n: n / 100 + 0.99),
), min_size=1, max_size=50))  # fmt: skip
def test_round4_is_pythons_round_to_the_bit(values: list[float]) -> None:
    assert round4(np.array(values)).tolist() == [round(v, 4) for v in values]


def described(results: Sequence[ScoreResult]) -> list[object]:
    return [[json.loads(o.value) for o in r.outputs] if isinstance(r, Scored) else r for r in results]  # type: ignore[arg-type]


def decision(result: ScoreResult) -> PricingDecision:
    assert isinstance(result, Scored) and isinstance(result.outputs[0].value, bytes)
    return PricingDecision.model_validate_json(result.outputs[0].value)
