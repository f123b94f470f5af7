"""Fraud's velocity state as fixed-size arrays in binary form: batches, layout, legacy JSON states, metrics."""

from __future__ import annotations

import math
import random

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from services.fraud.features import Txn, featurize_and_update, observe_batch, payments
from services.fraud.velocity import HOUR_MS, VERSION, StoredVelocity, from_legacy, legacy_view, txn_crc, value_id
from services.fraud.windows import rounds_of
from shared.runtime.metrics import BusinessMetrics
from shared.runtime.state import StateStore
from tests.support.fraud import T0, events, make_scorer, scores_of, txn


def _txn(i: int, user: str, ts_ms: int, amount: float = 20.0, device: str = "d1", country: str = "DE") -> Txn:
    return Txn(f"t{i}", user, ts_ms, amount, "EUR", "grocery", "web", device, country, "411111")


def _messy_log(seed: int = 3, count: int = 400) -> list[Txn]:
    """Few users, bursts, late and replayed payments, many devices and countries."""
    rng = random.Random(seed)
    log, ts = [], T0
    for i in range(count):
        ts += rng.choice([500, 4_000, 50_000, 900_000, 2 * HOUR_MS])
        late = rng.random() < 0.1
        log.append(_txn(i, f"u{rng.randrange(4)}", ts - (rng.randrange(3 * HOUR_MS) if late else 0),
                        round(rng.uniform(0.5, 900.0), 3), f"d{rng.randrange(12)}", rng.choice("ABCDEFGHIJ")))
        if rng.random() < 0.05:
            log.append(log[rng.randrange(len(log))])  # at-least-once redelivery
    return log


def test_a_batch_equals_one_payment_at_a_time() -> None:
    """Several payments of a user in one batch (one round each) see each other exactly as in sequence."""
    log = _messy_log()
    user, round_, users = rounds_of([t.user_id for t in log])
    assert round_.max() > 50, "the batch holds many payments per user"
    raw, after = observe_batch([None] * len(users), user, round_, payments(log))
    states: dict[str, StoredVelocity] = {}
    one_by_one = []
    for t in log:
        zero = np.zeros(1, dtype=np.intp)
        row, [states[t.user_id]] = observe_batch([states.get(t.user_id)], zero, zero, payments([t]))
        one_by_one.append(row[0])
    np.testing.assert_array_equal(raw, np.array(one_by_one))
    assert after == [states[u] for u in users]


def test_the_stored_form_is_versioned_compact_and_readable() -> None:
    _, _, state = featurize_and_update(None, _txn(1, "u1", T0, 12.345, "phone-7", "FR"))
    assert state[:1] == VERSION and len(state) < 128
    assert legacy_view(state) == {
        "r": [[T0, 12.35, txn_crc("t1")]], "h": [[T0 // HOUR_MS, 1, 12.35]],
        "dev": [[value_id("phone-7"), T0]], "cty": [[value_id("FR"), T0]],
        "n": 1, "mu": math.log1p(12.345), "m2": 0.0, "first": T0, "last": T0,
    }  # fmt: skip


def _legacy_after_two_payments() -> dict[str, object]:
    """What the JSON layout stored for t0 and t1 of u1 (20 EUR each, 5 s apart), as an old changelog holds it."""
    x = math.log1p(20.0)
    return {"r": [[T0, 20.0, txn_crc("t0")], [T0 + 5_000, 20.0, txn_crc("t1")]], "h": [[T0 // HOUR_MS, 2, 40.0]],
            "dev": [["d1", T0 + 5_000]], "cty": [["DE", T0 + 5_000]], "n": 2, "mu": x, "m2": 0.0,
            "first": T0, "last": T0 + 5_000}  # fmt: skip


def test_a_legacy_json_state_converts_to_the_binary_state_of_the_same_payments() -> None:
    scorer, _, state = make_scorer()
    scorer.score(events([txn(0, ts_ms=T0), txn(1, ts_ms=T0 + 5_000)]))
    legacy = _legacy_after_two_payments()
    assert from_legacy(legacy) == state.get_value(0, "u1")
    assert legacy_view(legacy) == legacy_view(from_legacy(legacy))


def test_a_legacy_json_changelog_restores_and_the_burst_is_still_caught() -> None:
    """The upgrade path: a changelog written by the JSON layout, replayed into a store the new scorer reads."""
    restored = StateStore()
    restored.apply_changelog(0, [(b"u1", orjson.dumps(_legacy_after_two_payments()))])
    assert isinstance(restored.get_value(0, "u1"), dict)
    burst = [txn(i, ts_ms=T0 + i * 5_000) for i in range(5)]
    scorer, _, _ = make_scorer(state=restored)
    upgraded = scores_of(scorer.score(events(burst[1:])))  # t1 again (a redelivery) and three more
    uninterrupted, _, _ = make_scorer()
    expected = scores_of(uninterrupted.score(events(burst)))[1:]
    assert upgraded == expected and upgraded[-1].decision == "decline"
    assert isinstance(restored.get_value(0, "u1"), bytes), "the state is written back in the binary layout"


def test_the_store_keeps_binary_values_as_they_are_beside_json_ones() -> None:
    store = StateStore()
    binary = VERSION + b"\x00{not json"
    store.put(0, "fraud-user", binary)
    store.put(0, "pricing-sku", {"day": 3})
    changes = {c.key: c.value for c in store.drain_changes()}
    assert changes == {"fraud-user": binary, "pricing-sku": b'{"day":3}'}
    restored = StateStore()
    restored.apply_changelog(0, [(k.encode(), v) for k, v in changes.items()])
    assert restored.get_value(0, "fraud-user") == binary and restored.get(0, "pricing-sku") == {"day": 3}
    with pytest.raises(TypeError):
        restored.get(0, "fraud-user")
    with pytest.raises(ValueError):
        store.put(0, "ambiguous", b'{"day": 3}')


def test_business_metrics_come_from_the_last_batch_columns() -> None:
    scorer, _, _ = make_scorer()
    results = scorer.score(events([txn(i, ts_ms=T0 + i * 5_000) for i in range(5)]))
    metrics = BusinessMetrics(registry := CollectorRegistry())
    scorer.record_business_metrics("fraud", results, metrics)
    decisions = [s.decision for s in scores_of(results)]
    for decision in ("approve", "decline"):
        counted = registry.get_sample_value("shopstream_business_decisions_total",
                                            {"service": "fraud", "decision": decision})  # fmt: skip
        assert counted == decisions.count(decision)
    assert registry.get_sample_value("shopstream_business_score_count", {"service": "fraud"}) == 5
