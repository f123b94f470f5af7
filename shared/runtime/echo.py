"""A trivial scorer for tests and benchmarks: echoes each event with a deterministic score."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from shared.runtime.scorer import Event, LoadContext, ModelInfo, Output, Rejected, Scored, Scorer, ScoreResult


class EchoEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: str = Field(min_length=1, max_length=64)
    value: float = 0.0
    payload: str = Field("", max_length=100_000)


class EchoScore(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    score: float
    count: int = 0
    """How many events this key has seen (only when the scorer keeps state)."""


class EchoScorer(Scorer[EchoEvent]):
    """Scores an event as crc32(id) mod 1000 / 1000; ids starting with ``reject`` are rejected."""

    input_schema: ClassVar[type[BaseModel]] = EchoEvent
    output_schema: ClassVar[type[BaseModel]] = EchoScore

    def __init__(self, stateful: bool = False) -> None:
        self.stateful = stateful  # type: ignore[misc]  # instance override of the class default
        self._context: LoadContext | None = None

    def load(self, context: LoadContext) -> None:
        self._context = context

    @property
    def model_info(self) -> ModelInfo:
        return ModelInfo(name="echo", version="1", sha256="0" * 64, provider="none")

    def key_of(self, event: EchoEvent) -> str | None:
        return event.id

    def score(self, batch: Sequence[Event[EchoEvent]]) -> Sequence[ScoreResult]:
        return [self._one(event) for event in batch]

    def _one(self, event: Event[EchoEvent]) -> ScoreResult:
        if event.value.id.startswith("reject"):
            return Rejected("rejected_by_scorer", f"id {event.value.id!r} is refused by the echo scorer")
        count = self._count(event)
        score = (zlib.crc32(event.value.id.encode()) % 1000) / 1000
        return Scored([Output(EchoScore(id=event.value.id, score=score, count=count))])

    def _count(self, event: Event[EchoEvent]) -> int:
        store = self._context.state if self._context else None
        if store is None:
            return 0
        previous = store.get(event.partition, event.key) or {"count": 0}
        count = int(previous["count"]) + 1
        store.put(event.partition, event.key, {"count": count})
        return count
