"""Probabilities → decisions (thresholds from settings), the model-error fallback, outputs."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from services.fraud.rules import RULE_REASONS, Rules
from services.fraud.settings import FraudSettings
from shared.runtime.scorer import Output, Scored
from shared.schemas.payments import Decision, FraudScore, Transaction
from shared.schemas.rows import Constant, RowEncoder

logger = logging.getLogger(__name__)

MODEL_UNAVAILABLE = "model_unavailable"
"""First reason code of every decision taken without the model."""
_BY_THRESHOLDS_PASSED: tuple[Decision, ...] = ("approve", "review", "decline")
_SCORES = RowEncoder(FraudScore)


def decide(probability: float, settings: FraudSettings) -> Decision:
    if probability >= settings.decline_threshold:
        return "decline"
    if probability >= settings.review_threshold:
        return "review"
    return "approve"


def fallback(
    numeric: np.ndarray, settings: FraudSettings
) -> tuple[np.ndarray, list[Decision], list[tuple[str, ...]]]:
    """Decisions while the model is failing, per ``model_error_policy`` (``fail_open``/``fail_closed``).

    ``probability`` is then the share of rules fired: a ranking score, flagged by the
    ``model_unavailable`` reason so no reader mistakes it for the model's output.
    """
    rules = Rules(**settings.fallback_rules.model_dump())
    fired = rules.fired(numeric)
    score = rules.score(numeric)
    decisions: list[Decision]
    if settings.model_error_policy == "fail_closed":
        decisions = [settings.fail_closed_decision] * len(numeric)
    else:
        decisions = ["review" if row.any() else "approve" for row in fired]
    why = [(MODEL_UNAVAILABLE, *dict.fromkeys(RULE_REASONS[j] for j in np.flatnonzero(row))) for row in fired]
    return score, decisions, why


def decide_all(probability: np.ndarray, settings: FraudSettings) -> list[Decision]:
    """:func:`decide` over a batch: two comparisons per batch, not two per payment.

    The settings validator guarantees ``review_threshold <= decline_threshold``, so the number
    of thresholds a probability reaches names its decision.
    """
    passed = (probability >= settings.review_threshold).astype(np.intp) + (probability >= settings.decline_threshold)
    return [_BY_THRESHOLDS_PASSED[n] for n in passed.tolist()]


def outputs_for(
    txns: Sequence[Transaction],
    probability: np.ndarray,
    decisions: Sequence[Decision],
    reasons: Sequence[tuple[str, ...]],
    model_version: str,
    settings: FraudSettings,
) -> list[Scored]:
    """Per payment, the score record, plus the same record on the alerts topic for a decline.

    The records are encoded in bulk from columns (:class:`RowEncoder`: FraudScore stays their
    schema, and the first record of each batch is validated by it).
    """
    encoded = _SCORES.encode(len(txns), {
        "txn_id": [t.txn_id for t in txns], "user_id": [t.user_id for t in txns],
        "probability": np.clip(np.asarray(probability, dtype=np.float64), 0.0, 1.0), "decision": decisions,
        "reasons": reasons, "model_version": Constant(model_version), "event_ts_ms": [t.ts_ms for t in txns],
    })  # fmt: skip
    alerts = settings.alerts_topic
    return [
        Scored((Output(v), Output(v, None, alerts)) if d == "decline" else (Output(v),))
        for v, d in zip(encoded, decisions, strict=True)
    ]
