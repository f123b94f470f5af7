"""The fraud scorer: velocity state per user, one batched ONNX call, decisions and reasons.

Per micro-batch:

1. each payment is featurised against its user's velocity state (read from the keyed state
   store; several payments of one user in a batch see each other, in offset order);
2. one ONNX call scores the batch, a second explains the flagged rows (reason codes);
3. the thresholds turn probabilities into decisions; declines also go to the alerts topic;
4. only then are the updated states written to the store (they reach the changelog with
   the batch's scores), so a batch the model failed on leaves the state untouched and a
   retry computes the same features.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from services.fraud.decisions import decide_all, fallback, outputs_for
from services.fraud.features import Txn, categorical_matrix, from_transaction, numeric_matrix, observe_and_update
from services.fraud.model import INPUTS, OUTPUTS, check_feature_spec, probabilities, reasons
from services.fraud.settings import FraudSettings
from services.fraud.velocity import VelocityState
from shared.errors import ScoringError
from shared.models.manifest import ModelManifest
from shared.models.slot import ModelSlot
from shared.runtime.metrics import BusinessMetrics, observe_many
from shared.runtime.model_scorer import ModelScorer
from shared.runtime.scorer import Event, LoadContext, Rejected, Scored, ScoreResult, outputs_of
from shared.runtime.state import StateStore
from shared.schemas.payments import FraudScore, Transaction

logger = logging.getLogger(__name__)


class FraudScorer(ModelScorer[Transaction, FraudSettings]):
    input_schema: ClassVar[type[BaseModel]] = Transaction
    output_schema: ClassVar[type[BaseModel]] = FraudScore
    stateful: ClassVar[bool] = True
    model_inputs = INPUTS
    model_outputs = OUTPUTS

    def __init__(self, settings: FraudSettings, slot: ModelSlot | None = None) -> None:
        super().__init__(settings, settings.model_name, slot)
        self._state: StateStore | None = None

    def on_load(self, context: LoadContext) -> None:
        self._state = context.state if context.state is not None else StateStore()

    def check_manifest(self, manifest: ModelManifest) -> None:
        check_feature_spec(manifest)

    def extra_output_topics(self) -> Sequence[str]:
        return (self.settings.alerts_topic,)

    def key_of(self, event: Transaction) -> str | None:
        return event.user_id

    def record_business_metrics(
        self, service: str, results: Sequence[ScoreResult], metrics: BusinessMetrics
    ) -> None:
        scores = outputs_of(results, FraudScore)
        for decision, count in Counter(s.decision for s in scores).items():
            metrics.decisions.labels(service, decision).inc(count)
        observe_many(metrics.score.labels(service), [s.probability for s in scores])

    def score(self, batch: Sequence[Event[Transaction]]) -> Sequence[ScoreResult]:
        assert self._state is not None, "load() first"
        results: list[ScoreResult | None] = [None] * len(batch)
        states: dict[tuple[int, str], VelocityState] = {}
        rows: list[int] = []
        txns: list[Txn] = []
        raw: list[tuple[float, ...]] = []
        for i, event in enumerate(batch):
            txn = self._txn(event.value)
            if isinstance(txn, Rejected):
                results[i] = txn
                continue
            key = (event.partition, txn.user_id)
            if key not in states:
                states[key] = VelocityState.from_dict(self._state.get(*key))
            raw.append(observe_and_update(states[key], txn))
            rows.append(i)
            txns.append(txn)
        num = numeric_matrix(np.asarray(raw, dtype=np.float64))
        cat = categorical_matrix(txns)
        for i, scored in zip(rows, self._decide(batch, rows, num, cat), strict=True):
            results[i] = scored
        for (partition, user), state in states.items():  # only after the model succeeded
            self._state.put(partition, user, state.to_dict())
        return [r for r in results if r is not None]

    def _txn(self, t: Transaction) -> Txn | Rejected:
        """Checks the schema cannot express (it already refuses missing fields, amount <= 0)."""
        if t.currency not in self.settings.currency_rates:
            return Rejected("unknown_currency", f"no EUR rate for currency {t.currency!r}")
        if not t.amount > 0:
            return Rejected("invalid_amount", f"amount must be positive, got {t.amount}")
        return from_transaction(t, self.settings.currency_rates)

    def _decide(
        self, batch: Sequence[Event[Transaction]], rows: list[int], num: np.ndarray, cat: np.ndarray
    ) -> list[Scored]:
        s = self.settings
        if not rows:
            return []
        loaded = self.slot.current
        try:
            prob = probabilities(loaded, num, cat)
            if not np.all(np.isfinite(prob)):
                raise ScoringError(f"model {loaded.manifest.version} returned non-finite probabilities")
            decisions = decide_all(prob, s)
            explain = [k for k, d in enumerate(decisions) if s.reasons_for == "all" or d != "approve"]
            why: list[tuple[str, ...]] = [() for _ in rows]
            for k, r in zip(explain, reasons(loaded, num[explain], cat[explain], prob[explain],
                                             s.max_reasons, s.reason_min_delta), strict=True):  # fmt: skip
                why[k] = r
        except Exception as exc:
            if s.model_error_policy == "retry":
                raise ScoringError(f"fraud model failed on a batch of {len(rows)}: {exc}") from exc
            logger.warning("fraud model failed (%s); deciding with policy %s", exc, s.model_error_policy)
            prob, decisions, why = fallback(num, s)
        version = loaded.manifest.version
        return outputs_for([batch[i].value for i in rows], prob, decisions, why, version, s)
