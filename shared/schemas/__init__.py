"""Event schemas: one pydantic v2 model per input event and output record.

Inputs are closed (``extra="forbid"``), frozen, strict and reject NaN/Inf; see
:mod:`shared.schemas.base` for the schema-evolution policy and :func:`decode`.
"""

from shared.schemas import headers
from shared.schemas.ads import MAX_CANDIDATES, AdCandidate, AdRequest, CandidateScore, CtrScores
from shared.schemas.base import CURRENT_SCHEMA_VERSION, InputEvent, OutputRecord, decode, describe, reason_of
from shared.schemas.clickstream import ClickEvent, RecoScores, ScoredItem, SourceRef
from shared.schemas.deadletter import DeadLetter
from shared.schemas.payments import CURRENCIES, FraudScore, Transaction
from shared.schemas.pricing import GUARDRAIL_NAMES, Outcome, PriceForecast, PricingDecision, PricingRequest

__all__ = [
    "CURRENCIES",
    "CURRENT_SCHEMA_VERSION",
    "GUARDRAIL_NAMES",
    "MAX_CANDIDATES",
    "AdCandidate",
    "AdRequest",
    "CandidateScore",
    "ClickEvent",
    "CtrScores",
    "DeadLetter",
    "FraudScore",
    "InputEvent",
    "Outcome",
    "OutputRecord",
    "PriceForecast",
    "PricingDecision",
    "PricingRequest",
    "RecoScores",
    "ScoredItem",
    "SourceRef",
    "Transaction",
    "decode",
    "describe",
    "headers",
    "reason_of",
]
