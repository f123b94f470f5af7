"""Stand-ins for the fraud scorer's unit tests: a rule-like "model" behind a slot-shaped stub."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from services.fraud.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from services.fraud.model import INPUTS, OUTPUTS, feature_spec
from services.fraud.scorer import FraudScorer
from services.fraud.settings import FraudSettings
from shared.models.manifest import ModelManifest
from shared.models.slot import LoadedModel
from shared.runtime.scorer import Event, LoadContext, ModelInfo, Output, Scored, ScoreResult
from shared.runtime.state import StateStore
from shared.schemas.payments import FraudScore, Transaction

COL = {n: i for i, n in enumerate(NUMERIC_FEATURES)}
T0 = 1_704_067_200_000


def burst_model(numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """0.97 for a 4th payment within a minute, 0.6 for a big amount, else 0.02."""
    burst = numeric[:, COL["cnt_1m"]] >= math.log1p(3) - 1e-6
    big = numeric[:, COL["log_amount"]] >= math.log1p(1000)
    return np.where(burst, 0.97, np.where(big, 0.6, 0.02)).astype(np.float32)


class StubModel:
    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        self.fn = fn
        self.feeds: list[dict[str, np.ndarray]] = []
        self.provider = "stub"

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.feeds.append(feeds)
        return {"probability": self.fn(feeds["numeric"], feeds["categorical"])}


class StubSlot:
    """Duck-types the part of :class:`ModelSlot` the scorer uses."""

    loaded = True

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], np.ndarray] = burst_model) -> None:
        baseline = {"numeric": [0.0] * len(NUMERIC_FEATURES), "categorical": [0] * len(CATEGORICAL_FEATURES)}
        manifest = ModelManifest(
            name="fraud", version="v0042", sha256="0" * 64, inputs=INPUTS, outputs=OUTPUTS, opset=17,
            feature_spec=feature_spec(), preprocessing={"reason_baseline": baseline},
        )  # fmt: skip
        self.model = StubModel(fn)
        self.current = LoadedModel(manifest=manifest, model=self.model)  # type: ignore[arg-type]

    @property
    def model_info(self) -> ModelInfo:
        return self.current.info

    def load(self) -> LoadedModel:
        return self.current

    def maybe_swap(self) -> bool:
        return False

    def close(self) -> None:
        pass


def make_scorer(
    slot: StubSlot | None = None, state: StateStore | None = None, **settings: Any
) -> tuple[FraudScorer, StubSlot, StateStore]:
    slot = slot or StubSlot()
    state = state or StateStore()
    scorer = FraudScorer(FraudSettings(**settings), slot=slot)  # type: ignore[arg-type]
    scorer.load(LoadContext(settings=scorer.settings, state=state))
    return scorer, slot, state


def txn(i: int, user: str = "u1", ts_ms: int = T0, amount: float = 20.0, **fields: Any) -> Transaction:
    values: dict[str, Any] = {
        "txn_id": f"t{i}", "user_id": user, "card_id": "c1", "amount": amount, "currency": "EUR",
        "merchant_id": "m1", "merchant_category": "grocery", "device_id": "d1", "ip_country": "DE",
        "card_bin": "411111", "channel": "web", "ts_ms": ts_ms,
    }  # fmt: skip
    values.update(fields)
    return Transaction.model_validate(values)


def events(txns: Sequence[Transaction], partition: int = 0, offset0: int = 0) -> list[Event[Transaction]]:
    return [Event(value=t, key=t.user_id, topic="payments.transactions", partition=partition,
                  offset=offset0 + i, timestamp_ms=t.ts_ms) for i, t in enumerate(txns)]  # fmt: skip


def score_record(output: Output) -> FraudScore:
    """The FraudScore an output holds (the scorer writes its records as encoded JSON)."""
    assert isinstance(output.value, bytes), "the fraud scorer encodes its records in bulk"
    return FraudScore.model_validate_json(output.value)


def scores_of(results: Sequence[ScoreResult]) -> list[FraudScore]:
    """The score record of each scored payment, in order (rejected payments left out)."""
    return [score_record(r.outputs[0]) for r in results if isinstance(r, Scored)]
