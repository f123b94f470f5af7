"""Customer support: ``support.messages`` in; ``support.intents`` / ``support.escalations`` out (key ``customer_id``).

A message's text is what a customer typed, so it is checked before a tokenizer sees it:
surrounding whitespace is stripped, the rest must be 1 to :data:`MAX_TEXT_CHARS` characters,
and control characters other than newline, tab and carriage return are refused (they are
never typed; they come from a broken producer or a hostile one). Invalid UTF-8 never gets
this far: the runtime's decoder refuses it with the reason ``invalid_utf8``.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from shared.schemas.base import Id, InputEvent, ModelVersion, OutputRecord, Probability, TsMs

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 1000
"""The longest message text, in characters after stripping surrounding whitespace."""
TOP_K = 3
"""How many intents an output lists, best first."""

SupportChannel = Literal["email", "chat", "app", "phone"]
EscalationReason = Literal["low_confidence", "repeated_problem"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _no_control_characters(text: object) -> object:
    # Before stripping: Python counts U+001C..U+001F and U+0085 as whitespace, and a control
    # character must be refused wherever it sits, not silently stripped from the ends.
    found = _CONTROL.search(text) if isinstance(text, str) else None
    if found is not None:
        raise ValueError(
            f"control character U+{ord(found.group()):04X} at position {found.start()}; "
            "only newline, tab and carriage return are allowed"
        )
    return text


MessageText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS),
    BeforeValidator(_no_control_characters),
]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")]
IntentName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
QueueName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class SupportMessage(InputEvent):
    """One message a customer sent to support."""

    message_id: Id
    customer_id: Id
    channel: SupportChannel
    language: Language = Field(description="ISO 639-1, optionally with an ISO 3166-1 region: `en`, `en-GB`")
    text: MessageText = Field(
        description=f"1-{MAX_TEXT_CHARS} characters after stripping; no control characters but \\n \\t \\r"
    )
    ts_ms: TsMs


class IntentScore(BaseModel):
    """One intent and the model's probability for it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    intent: IntentName
    probability: Probability


class SupportIntent(OutputRecord):
    """What the message is about, where it is routed, and whether a person should take it now."""

    message_id: str
    customer_id: str
    intent: IntentName = Field(description="the most probable intent")
    probability: Probability
    top3: tuple[IntentScore, ...] = Field(max_length=TOP_K, description="best first; fewer if the model has fewer")
    queue: QueueName
    escalate: bool
    escalation_reasons: tuple[EscalationReason, ...] = Field(
        default=(), max_length=2, description="empty unless escalate; both when both apply"
    )
    model_version: ModelVersion
    event_ts_ms: int


class SupportEscalation(OutputRecord):
    """An escalated message, for the people who take them (only escalated messages get one)."""

    message_id: str
    customer_id: str
    intent: IntentName
    probability: Probability
    queue: QueueName
    reasons: tuple[EscalationReason, ...] = Field(min_length=1, max_length=2)
    repeat_count: int = Field(
        ge=1, description="messages of this customer about this problem within the window, this one included"
    )
    repeat_window_s: int = Field(ge=0, description="the window repeat_count was counted over")
    channel: SupportChannel
    model_version: ModelVersion
    event_ts_ms: int
