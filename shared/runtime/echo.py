"""A trivial scorer for tests and benchmarks: echoes each event with a deterministic score."""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from shared.errors import ScoringError
from shared.runtime.scorer import Event, LoadContext, ModelInfo, Output, Rejected, Scored, Scorer, ScoreResult
from shared.schemas.rows import RowEncoder
from shared.settings import ServiceSettings


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


class EchoSettings(ServiceSettings):
    """Settings of the echo service (tests and benchmarks): ``SHOPSTREAM_ECHO_*``."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_ECHO_", env_nested_delimiter="__", extra="ignore")

    service_name: str = "echo"
    input_topic: str = "echo.events"
    output_topic: str = "echo.scores"
    stateful: bool = False
    """Count events per key in the state store (exercises changelog restore)."""
    fail_while_file_exists: Path | None = None
    """Scoring raises while this file exists: a controllable model outage for tests."""
    fail_on_ids: frozenset[str] = frozenset()
    """Scoring raises on any batch holding an event with one of these ids: a bug that one record
    trips (a poison record), for tests."""
    delay_ms: float = Field(0.0, ge=0)
    """Extra time per batch, to imitate a model."""


class EchoScorer(Scorer[EchoEvent]):
    """Scores an event as crc32(id) mod 1000 / 1000; ids starting with ``reject`` are rejected."""

    input_schema: ClassVar[type[BaseModel]] = EchoEvent
    output_schema: ClassVar[type[BaseModel]] = EchoScore

    def __init__(
        self, stateful: bool = False, fail_while_file_exists: Path | None = None, delay_ms: float = 0.0,
        fail_on_ids: frozenset[str] = frozenset(),
    ) -> None:
        self.stateful = stateful  # type: ignore[misc]  # instance override of the class default
        self._fail_flag = fail_while_file_exists
        self._fail_on_ids = fail_on_ids
        self._delay_s = delay_ms / 1000
        self._context: LoadContext | None = None
        self._encoder = RowEncoder(EchoScore)

    def load(self, context: LoadContext) -> None:
        self._context = context

    @property
    def model_info(self) -> ModelInfo:
        return ModelInfo(name="echo", version="1", sha256="0" * 64, provider="none")

    def key_of(self, event: EchoEvent) -> str | None:
        return event.id

    def score(self, batch: Sequence[Event[EchoEvent]]) -> Sequence[ScoreResult]:
        if self._fail_flag is not None and self._fail_flag.exists():
            raise ScoringError(f"model outage simulated by {self._fail_flag}")
        if self._delay_s:
            time.sleep(self._delay_s)
        results = self._score(batch)
        if self._fail_on_ids:
            poison = next((e for e in batch if e.value.id in self._fail_on_ids), None)
            if poison is not None:  # after the state writes: the runtime must discard them
                raise ValueError(f"echo cannot score id {poison.value.id!r}")
        return results

    def _score(self, batch: Sequence[Event[EchoEvent]]) -> list[ScoreResult]:
        results: list[ScoreResult | None] = [None] * len(batch)
        scored: list[int] = []
        for i, event in enumerate(batch):
            if event.value.id.startswith("reject"):
                results[i] = Rejected("rejected_by_scorer", f"id {event.value.id!r} is refused by the echo scorer")
            else:
                scored.append(i)
        ids = [batch[i].value.id for i in scored]
        values = self._encoder.encode(len(ids), {
            "id": ids,
            "score": [(zlib.crc32(id_.encode()) % 1000) / 1000 for id_ in ids],
            "count": [self._count(batch[i]) for i in scored],
        })
        for i, value in zip(scored, values, strict=True):
            results[i] = Scored([Output(value)])
        return [r for r in results if r is not None]

    def _count(self, event: Event[EchoEvent]) -> int:
        store = self._context.state if self._context else None
        if store is None:
            return 0
        previous = store.get(event.partition, event.key) or {"count": 0}
        count = int(previous["count"]) + 1
        store.put(event.partition, event.key, {"count": count})
        return count


SETTINGS_CLASS = EchoSettings


def create_scorer(settings: ServiceSettings) -> EchoScorer:
    assert isinstance(settings, EchoSettings)
    return EchoScorer(settings.stateful, settings.fail_while_file_exists, settings.delay_ms, settings.fail_on_ids)
