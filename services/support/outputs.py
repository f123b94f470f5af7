"""A batch's intents and escalations as records, encoded in bulk from columns."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.runtime.scorer import Output, Scored
from shared.schemas.rows import Constant, RowEncoder
from shared.schemas.support import EscalationReason, SupportEscalation, SupportIntent, SupportMessage

logger = logging.getLogger(__name__)

_INTENTS = RowEncoder(SupportIntent)
_ESCALATIONS = RowEncoder(SupportEscalation)
NO_REASONS: tuple[EscalationReason, ...] = ()


@dataclass(frozen=True, slots=True)
class Understood:
    """Columns of a scored batch, one row per message."""

    intents: list[str]
    probability: np.ndarray
    top3: list[list[dict[str, str | float]]]
    queues: list[str]
    reasons: list[tuple[EscalationReason, ...]]
    repeats: list[int]


def reasons_of(low: Sequence[bool], repeated: Sequence[bool]) -> list[tuple[EscalationReason, ...]]:
    """Per message, why it is escalated (empty: it is not)."""
    table: dict[tuple[bool, bool], tuple[EscalationReason, ...]] = {
        (False, False): NO_REASONS, (True, False): ("low_confidence",), (False, True): ("repeated_problem",),
        (True, True): ("low_confidence", "repeated_problem"),
    }  # fmt: skip
    return [table[(lo, rep)] for lo, rep in zip(low, repeated, strict=True)]


def outputs_for(messages: Sequence[SupportMessage], facts: Understood, version: str, escalations_topic: str,
                window_s: int) -> list[Scored]:
    """Per message its ``SupportIntent`` record, plus a ``SupportEscalation`` when it is escalated."""
    n = len(messages)
    ids, customers = [m.message_id for m in messages], [m.customer_id for m in messages]
    event_ts = [m.ts_ms for m in messages]
    probability = np.clip(facts.probability.astype(np.float64), 0.0, 1.0)
    escalate = [bool(r) for r in facts.reasons]
    intents = _INTENTS.encode(n, {
        "message_id": ids, "customer_id": customers, "intent": facts.intents, "probability": probability,
        "top3": facts.top3, "queue": facts.queues, "escalate": escalate, "escalation_reasons": facts.reasons,
        "model_version": Constant(version), "event_ts_ms": event_ts,
    })  # fmt: skip
    rows = [i for i, e in enumerate(escalate) if e]
    escalated = iter(_ESCALATIONS.encode(len(rows), {
        "message_id": [ids[i] for i in rows], "customer_id": [customers[i] for i in rows],
        "intent": [facts.intents[i] for i in rows], "probability": probability[rows], "queue":
        [facts.queues[i] for i in rows], "reasons": [facts.reasons[i] for i in rows],
        "repeat_count": [facts.repeats[i] for i in rows], "repeat_window_s": Constant(window_s),
        "channel": [messages[i].channel for i in rows], "model_version": Constant(version),
        "event_ts_ms": [event_ts[i] for i in rows],
    })) if rows else iter(())  # fmt: skip
    return [Scored((Output(v), Output(next(escalated), None, escalations_topic)) if e else (Output(v),))
            for v, e in zip(intents, escalate, strict=True)]
