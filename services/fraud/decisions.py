"""Probabilities → decisions (thresholds from settings), the model-error fallback, outputs."""

from __future__ import annotations

import logging

import numpy as np

from services.fraud.rules import RULE_REASONS, Rules
from services.fraud.settings import FraudSettings
from shared.runtime.scorer import Output, Scored
from shared.schemas.payments import Decision, FraudScore, Transaction

logger = logging.getLogger(__name__)

MODEL_UNAVAILABLE = "model_unavailable"
"""First reason code of every decision taken without the model."""


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


def outputs_for(
    txn: Transaction,
    probability: float,
    decision: Decision,
    reasons: tuple[str, ...],
    model_version: str,
    settings: FraudSettings,
) -> Scored:
    """The score record, plus the same record on the alerts topic for a decline."""
    record = FraudScore(
        txn_id=txn.txn_id, user_id=txn.user_id, probability=min(max(probability, 0.0), 1.0), decision=decision,
        reasons=reasons, model_version=model_version, event_ts_ms=txn.ts_ms,
    )  # fmt: skip
    outputs = [Output(value=record)]
    if decision == "decline":
        outputs.append(Output(value=record, topic=settings.alerts_topic))
    return Scored(outputs)
