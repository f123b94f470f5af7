"""Ads: ``ads.impressions`` in (key ``request_id``), ``ads.ctr_scores`` out (key ``request_id``)."""

from __future__ import annotations

import logging
from operator import attrgetter
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.schemas.base import Id, InputEvent, ModelVersion, Name, OutputRecord, Probability, TsMs

logger = logging.getLogger(__name__)

MAX_CANDIDATES = 50
"""Hard schema limit; a service may configure a lower maximum and reject above it."""
MAX_TITLE_CHARS = 200

Device = Literal["desktop", "mobile", "tablet", "tv", "other"]
Bid = Annotated[float, Field(gt=0.0, le=1e6, description="bid per click, finite and positive")]
_AD_ID = attrgetter("ad_id")


class AdCandidate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    ad_id: Id
    advertiser_id: Id
    category: Name
    creative_id: Id
    title: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TITLE_CHARS)]
    bid: Bid


class AdRequest(InputEvent):
    """An ad slot to fill: the user/context features and the candidate ads to rank."""

    request_id: Id
    user_id: Id
    device: Device
    slot: Name
    site_or_app: Name
    hour: int = Field(ge=0, le=23)
    user_segment: Name
    candidates: tuple[AdCandidate, ...] = Field(min_length=1, max_length=MAX_CANDIDATES, strict=False)
    """A JSON array; ``strict=False`` only lets Python callers pass a list (items stay strict)."""
    ts_ms: TsMs

    @model_validator(mode="after")
    def _unique_ads(self) -> AdRequest:
        # The one rule pydantic cannot state declaratively (it has no unique-items constraint for
        # objects); a set of the ids, built in C, keeps it to about 0.1 us per candidate.
        if len(set(map(_AD_ID, self.candidates))) != len(self.candidates):
            ids = [c.ad_id for c in self.candidates]
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValueError(f"duplicate ad_id {dup!r} in candidates")
        return self


class CandidateScore(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    ad_id: str
    pctr: Probability
    bid: float = Field(gt=0.0)
    expected_value: float = Field(ge=0.0, description="bid x pctr")
    rank: int = Field(ge=1, description="1 = highest expected value")


class CtrScores(OutputRecord):
    """Calibrated pCTR per candidate, in the request's candidate order, with the EV ranking."""

    request_id: str
    candidates: tuple[CandidateScore, ...] = Field(min_length=1, max_length=MAX_CANDIDATES)
    model_version: ModelVersion
    event_ts_ms: int

    @model_validator(mode="after")
    def _ranks_are_permutation(self) -> CtrScores:
        if sorted(c.rank for c in self.candidates) != list(range(1, len(self.candidates) + 1)):
            raise ValueError("ranks must be a permutation of 1..n")
        return self
