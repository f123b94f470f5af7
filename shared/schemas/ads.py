"""Ads: ``ads.impressions`` in (key ``request_id``), ``ads.ctr_scores`` out (key ``request_id``)."""

from __future__ import annotations

import logging
from operator import itemgetter
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    model_validator,
    with_config,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema as cs
from typing_extensions import TypedDict

from shared.schemas.base import Id, InputEvent, ModelVersion, Name, OutputRecord, Probability, TsMs

logger = logging.getLogger(__name__)

MAX_CANDIDATES = 50
"""Hard schema limit; a service may configure a lower maximum and reject above it."""
MAX_TITLE_CHARS = 200

Device = Literal["desktop", "mobile", "tablet", "tv", "other"]
Bid = Annotated[float, Field(gt=0.0, le=1e6, description="bid per click, finite and positive")]
_AD_ID = itemgetter("ad_id")


# One candidate ad, validated by pydantic-core into a plain dict (read ``candidate["bid"]``). Not a
# model: a request carries up to 50 candidates, and a model instance per candidate (plus its
# fields-set) was most of a request's decode time, much of it in the garbage collector (which does
# not track a dict of strings and floats). No docstring: it would become the JSON Schema's text.
@with_config(ConfigDict(extra="forbid", strict=True, allow_inf_nan=False))
class AdCandidate(TypedDict):

    ad_id: Id
    advertiser_id: Id
    category: Name
    creative_id: Id
    title: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TITLE_CHARS)]
    bid: Bid


class _ObjectOrRefused:
    """A candidate that is not a JSON object is refused as ``model_type`` (``malformed_json``), as
    when candidates were models, rather than a typed dict's ``dict_type`` (``invalid_value``).

    A check in pydantic-core (a chain: "is an object", then the typed dict), no Python per candidate.
    """

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> cs.CoreSchema:
        is_object = cs.custom_error_schema(cs.dict_schema(strict=True), custom_error_type="model_type",
                                           custom_error_context={"class_name": "AdCandidate"})
        return cs.chain_schema([is_object, handler(source)])

    def __get_pydantic_json_schema__(self, schema: cs.CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return handler(schema["steps"][1])  # type: ignore[typeddict-item]  # the typed dict: the chain's 2nd step


class AdRequest(InputEvent):
    """An ad slot to fill: the user/context features and the candidate ads to rank."""

    request_id: Id
    user_id: Id
    device: Device
    slot: Name
    site_or_app: Name
    hour: int = Field(ge=0, le=23)
    user_segment: Name
    candidates: tuple[Annotated[AdCandidate, _ObjectOrRefused()], ...] = Field(
        min_length=1, max_length=MAX_CANDIDATES, strict=False
    )
    """A JSON array; ``strict=False`` only lets Python callers pass a list (items stay strict)."""
    ts_ms: TsMs

    @model_validator(mode="after")
    def _unique_ads(self) -> AdRequest:
        # The one rule pydantic cannot state declaratively (it has no unique-items constraint for
        # objects); a set of the ids, built in C, keeps it to about 0.1 us per candidate.
        if len(set(map(_AD_ID, self.candidates))) != len(self.candidates):
            ids = [c["ad_id"] for c in self.candidates]
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
