"""The fraud scorer: velocity state per user, one batched ONNX call, decisions and reasons.

Per micro-batch:

1. the payments are featurised together, with numpy, against their users' velocity states
   (read from the keyed state store as fixed-size arrays; several payments of one user in a
   batch see each other, in offset order: :mod:`services.fraud.windows`);
2. one ONNX call scores the batch, a second explains the flagged rows (reason codes);
3. the thresholds turn probabilities into decisions; the records are encoded in bulk from
   columns, and declines also go to the alerts topic;
4. only then are the updated states written to the store (they reach the changelog with
   the batch's scores), so a batch the model failed on leaves the state untouched and a
   retry computes the same features.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from services.fraud.decisions import decide_all, fallback, outputs_for
from services.fraud.features import categorical_matrix, known_ids, numeric_matrix, observe_batch
from services.fraud.model import INPUTS, OUTPUTS, check_feature_spec, probabilities, reasons
from services.fraud.settings import FraudSettings
from services.fraud.velocity import txn_crc
from services.fraud.windows import Payments, rounds_of
from shared.agreement import AgreementView
from shared.errors import ScoringError
from shared.models.manifest import ModelManifest
from shared.models.slot import ModelSlot
from shared.runtime.metrics import BusinessMetrics, observe_many
from shared.runtime.model_scorer import ModelScorer
from shared.runtime.scorer import Event, LoadContext, Rejected, Scored, ScoreResult
from shared.runtime.state import StateStore
from shared.schemas.payments import Decision, FraudScore, Transaction

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
        self._last: tuple[list[Decision], np.ndarray] = ([], np.zeros(0))
        """Decisions and scores of the last batch scored, for the business metrics."""

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
        """From the columns of the last batch :meth:`score` returned (its outputs are encoded bytes)."""
        decisions, probability = self._last
        for decision, count in Counter(decisions).items():
            metrics.decisions.labels(service, decision).inc(count)
        observe_many(metrics.score.labels(service), probability.tolist())

    def agreement_view(self, output: dict[str, Any]) -> AgreementView | None:
        """The fraud probability and the decision (approve, review, decline)."""
        return AgreementView(scores={"": output["probability"]}, decision=output["decision"])

    def predict(self, batch: Sequence[Event[Transaction]]) -> Sequence[ScoreResult]:
        assert self._state is not None, "load() first"
        values = [e.value for e in batch]
        rows, amounts, rejected = self._valid(values)
        txns = values if not rejected else [values[i] for i in rows]
        self._last = ([], np.zeros(0))
        scored: list[Scored] = []
        if txns:
            partitions = [e.partition for e in batch] if not rejected else [batch[i].partition for i in rows]
            user, round_, keys = rounds_of(list(zip(partitions, [t.user_id for t in txns], strict=True)))
            pay = Payments(ts_ms=np.array([t.ts_ms for t in txns], dtype=np.int64), amount_eur=amounts,
                           crc=np.array([txn_crc(t.txn_id) for t in txns], dtype=np.uint32), known=known_ids(txns))
            raw, states = observe_batch([self._state.get_value(*key) for key in keys], user, round_, pay)
            scored, decisions, probability = self._decide(txns, numeric_matrix(raw), categorical_matrix(txns))
            for (partition, key), state in zip(keys, states, strict=True):  # only after the model succeeded
                self._state.put(partition, key, state)
            self._last = (decisions, np.clip(np.asarray(probability, dtype=np.float64), 0.0, 1.0))
        if not rejected:
            return scored
        results: list[ScoreResult] = list(rejected.values()) if not scored else []
        if scored:
            by_row = dict(zip(rows, scored, strict=True))
            results = [by_row[i] if i in by_row else rejected[i] for i in range(len(batch))]
        return results

    def _valid(self, txns: list[Transaction]) -> tuple[list[int], np.ndarray, dict[int, Rejected]]:
        """The rows to score, their EUR amounts, and the others' :class:`Rejected` by row (checks the
        schema cannot express: it already refuses missing fields and amounts <= 0)."""
        rates = self.settings.currency_rates
        rate_of = {c: rates.get(c, np.nan) for c in {t.currency for t in txns}}
        rate = np.array([rate_of[t.currency] for t in txns], dtype=np.float64)
        amount = np.array([t.amount for t in txns], dtype=np.float64)
        ok = ~np.isnan(rate) & (amount > 0)
        rejected: dict[int, Rejected] = {}
        for i in np.flatnonzero(~ok).tolist():
            t = txns[i]
            if t.currency not in rates:
                rejected[i] = Rejected("unknown_currency", f"no EUR rate for currency {t.currency!r}")
            else:
                rejected[i] = Rejected("invalid_amount", f"amount must be positive, got {t.amount}")
        return np.flatnonzero(ok).tolist(), (amount / rate)[ok], rejected

    def _decide(
        self, txns: list[Transaction], num: np.ndarray, cat: np.ndarray
    ) -> tuple[list[Scored], list[Decision], np.ndarray]:
        s = self.settings
        loaded = self.slot.current
        try:
            prob = probabilities(loaded, num, cat)
            if not np.all(np.isfinite(prob)):
                raise ScoringError(f"model {loaded.manifest.version} returned non-finite probabilities")
            decisions = decide_all(prob, s)
            explain = [k for k, d in enumerate(decisions) if s.reasons_for == "all" or d != "approve"]
            why: list[tuple[str, ...]] = [() for _ in txns]
            for k, r in zip(explain, reasons(loaded, num[explain], cat[explain], prob[explain],
                                             s.max_reasons, s.reason_min_delta), strict=True):  # fmt: skip
                why[k] = r
        except Exception as exc:
            if s.model_error_policy == "retry":
                raise ScoringError(f"fraud model failed on a batch of {len(txns)}: {exc}") from exc
            logger.warning("fraud model failed (%s); deciding with policy %s", exc, s.model_error_policy)
            prob, decisions, why = fallback(num, s)
        version = loaded.manifest.version
        return outputs_for(txns, prob, decisions, why, version, s), decisions, prob
