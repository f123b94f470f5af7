"""Velocity features: one implementation, same values in training replay and in the scorer."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from services.fraud.features import NUMERIC_FEATURES, Txn, featurize_and_update, from_transaction, replay
from services.fraud.velocity import MAX_KNOWN, MAX_RECENT, StoredVelocity, legacy_view
from shared.schemas.payments import Transaction
from sim.registry import make_stream, world_for
from tests.support.fraud import COL, T0, events, make_scorer, txn


def _txn(i: int, ts_ms: int, amount: float = 20.0, device: str = "d1", country: str = "DE") -> Txn:
    return Txn(f"t{i}", "u1", ts_ms, amount, "EUR", "grocery", "web", device, country, "411111")


def _features(txns: list[Txn]) -> np.ndarray:
    """Features one payment at a time, the state going through its stored bytes between payments."""
    state: StoredVelocity | None = None
    rows = []
    for t in txns:
        numeric, _, state = featurize_and_update(state, t)
        rows.append(numeric)
    return np.array(rows)


@pytest.fixture(scope="module")
def sim_txns() -> list[Transaction]:
    stream = make_stream("payments", world=world_for(7, 500, 200), txns_per_second=5.0)
    return [Transaction.model_validate(event) for event, _ in stream.iter_dicts(1500)]


def test_windows_count_earlier_payments_of_the_user() -> None:
    x = _features([_txn(i, T0 + i * 10_000) for i in range(5)] + [_txn(9, T0 + 30 * 60_000)])
    assert np.allclose(x[:5, COL["cnt_1m"]], np.log1p([0, 1, 2, 3, 4]))  # 10 s apart: all within a minute
    assert np.allclose(x[5, [COL["cnt_1m"], COL["cnt_1h"]]], np.log1p([0, 5]))
    assert np.isclose(x[5, COL["amt_1h"]], math.log1p(100.0))
    assert np.isclose(x[1, COL["log_secs_since_last"]], math.log1p(10.0))
    assert x[0, COL["first_seen"]] == 1.0 and x[1, COL["first_seen"]] == 0.0


def test_new_device_country_and_distinct_counts() -> None:
    x = _features([_txn(0, T0), _txn(1, T0 + 1000, device="d2", country="FR"), _txn(2, T0 + 2000, device="d2")])
    assert x[1, COL["new_device"]] == 1.0 and x[1, COL["new_country"]] == 1.0
    assert x[2, COL["new_device"]] == 0.0
    assert x[2, COL["devices_24h"]] == 2.0 and x[2, COL["countries_24h"]] == 2.0


def test_amount_relative_to_history_flags_a_spike() -> None:
    history = [_txn(i, T0 + i * 3_600_000, amount=30.0 + i) for i in range(10)]
    x = _features([*history, _txn(99, T0 + 11 * 3_600_000, 900)])
    assert x[-1, COL["amount_z"]] > 3.0
    assert abs(x[-2, COL["amount_z"]]) < 1.0


def test_replayed_payment_is_not_counted_twice() -> None:
    state: StoredVelocity | None = None
    first = []
    for i in range(3):
        numeric, _, state = featurize_and_update(state, _txn(i, T0 + i * 1000))
        first.append(numeric)
    assert state is not None
    again, _, after = featurize_and_update(state, _txn(2, T0 + 2000))  # at-least-once redelivery
    assert after == state
    assert again[COL["cnt_1m"]] == first[2][COL["cnt_1m"]]


def test_state_stays_small_under_a_flood() -> None:
    state: StoredVelocity | None = None
    for i in range(3000):
        _, _, state = featurize_and_update(state, _txn(i, T0 + i * 40_000, device=f"d{i % 50}", country=f"C{i % 20}"))
    assert isinstance(state, bytes)
    stored = legacy_view(state)
    assert len(stored["r"]) <= MAX_RECENT and len(stored["h"]) <= 25
    assert len(stored["dev"]) <= MAX_KNOWN and len(stored["cty"]) <= MAX_KNOWN
    assert len(state) < 2048


def test_training_replay_equals_serving_features(sim_txns: list[Transaction]) -> None:
    """The training path (replay) and the scorer (state store, batches, partitions) agree exactly."""
    numeric, categorical = replay([from_transaction(t) for t in sim_txns])
    scorer, slot, _ = make_scorer(max_reasons=0)  # no explanation calls: every model call is a batch
    order: list[str] = []
    for start in range(0, len(sim_txns), 64):
        by_part: dict[int, list[Transaction]] = {}
        for t in sim_txns[start : start + 64]:
            by_part.setdefault(zlib.crc32(t.user_id.encode()) % 3, []).append(t)
        # partitions one after the other, as the runtime hands a batch over (order kept per user)
        batch = [e for p, ts in sorted(by_part.items()) for e in events(ts, partition=p)]
        order += [e.value.txn_id for e in batch]
        scorer.score(batch)
    row = {t.txn_id: i for i, t in enumerate(sim_txns)}
    idx = np.array([row[t] for t in order])
    served_num = np.concatenate([f["numeric"] for f in slot.model.feeds])
    served_cat = np.concatenate([f["categorical"] for f in slot.model.feeds])
    assert served_num.shape == (len(sim_txns), len(NUMERIC_FEATURES))
    np.testing.assert_array_equal(served_num, numeric[idx])
    np.testing.assert_array_equal(served_cat, categorical[idx])


def test_currency_is_converted_before_comparing_amounts() -> None:
    eur = from_transaction(txn(1, amount=100.0))
    jpy = from_transaction(txn(2, amount=16_300.0, currency="JPY"))
    assert math.isclose(eur.amount_eur, jpy.amount_eur, rel_tol=1e-9)
