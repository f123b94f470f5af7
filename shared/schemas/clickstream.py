"""Clickstream: ``clickstream.events`` in (key ``user_id``), ``reco.scores`` out (key ``user_id``)."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.schemas.base import Id, InputEvent, ModelVersion, Name, OutputRecord, TsMs

logger = logging.getLogger(__name__)

EventType = Literal["view", "add_to_cart", "purchase", "search"]
ItemId = Annotated[int, Field(ge=0, le=2**31 - 1)]
MAX_RECO_ITEMS = 1000


class ClickEvent(InputEvent):
    """One user interaction with the shop."""

    user_id: Id
    session_id: Id
    item_id: ItemId = Field(description="the item viewed/added/bought; for search, the result clicked")
    event_type: EventType
    category: Name | None = None
    query: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = Field(
        default=None, description="the search text; required when event_type is 'search', else absent"
    )
    ts_ms: TsMs

    @model_validator(mode="after")
    def _query_iff_search(self) -> ClickEvent:
        if self.event_type == "search" and self.query is None:
            raise ValueError("a 'search' event needs a non-empty query")
        if self.event_type != "search" and self.query is not None:
            raise ValueError(f"query is only allowed on 'search' events, not {self.event_type!r}")
        return self


class ScoredItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    item_id: ItemId
    score: float


class SourceRef(BaseModel):
    """The click event a recommendation answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ts_ms: int
    item_id: ItemId
    event_type: EventType
    session_id: str


class RecoScores(OutputRecord):
    """Top-K items for a user, best first."""

    user_id: str
    items: tuple[ScoredItem, ...] = Field(max_length=MAX_RECO_ITEMS)
    k: int = Field(ge=1, le=MAX_RECO_ITEMS)
    model_version: ModelVersion
    source: SourceRef
    cold_start: bool = Field(default=False, description="popular-in-category fallback was used")

    @model_validator(mode="after")
    def _at_most_k(self) -> RecoScores:
        if len(self.items) > self.k:
            raise ValueError(f"{len(self.items)} items for k={self.k}")
        return self
