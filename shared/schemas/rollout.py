"""The records that roll a model version out: plans, decisions and the monitor's evidence.

* :class:`RolloutPlan`, key ``rollout`` on a service's config topic: run a candidate version in
  *shadow* (every batch scored by both, the candidate's outputs on ``<output>.shadow``) or as a
  *canary* (a stable hash of the key sends ``share`` of the keys to it), or neither.
* :class:`ModelEvent`, key ``<service>`` on the compacted ``shopstream.model-events`` topic: the
  latest promotion, refusal or rollback, with its evidence and who asked, and the version every
  instance of the service serves since. Compaction keeps one record per service, so each record
  carries the whole state: the live version and the versions it replaced (what a rollback
  returns to), besides the decision that led to it.
* :class:`QualitySnapshot`, key ``<service>/<version>`` on the compacted
  ``shopstream.live-quality`` topic: the monitor's measures of one version, the evidence a
  promotion is judged on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.schemas.base import Name

MODEL_EVENTS_TOPIC = "shopstream.model-events"
LIVE_QUALITY_TOPIC = "shopstream.live-quality"
ROLLOUT_KEY = "rollout"
"""The config-topic key of a service's :class:`RolloutPlan`."""

RolloutMode = Literal["off", "shadow", "canary"]
Decision = Literal["promoted", "refused", "rolled_back"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, protected_namespaces=())


class RolloutPlan(_Record):
    """How a candidate version runs beside the live one (``mode="off"``: it does not)."""

    mode: RolloutMode = "off"
    candidate: Name | None = Field(default=None, description="the candidate version, e.g. v0003")
    share: float = Field(default=0.0, ge=0.0, le=1.0, description="canary: the share of keys it scores")

    @model_validator(mode="after")
    def _needs_candidate(self) -> RolloutPlan:
        if self.mode != "off" and not self.candidate:
            raise ValueError(f"a {self.mode} rollout needs a candidate version")
        return self


class VersionQuality(_Record):
    """One version's live measures, as the gate read them."""

    version: Name
    outcomes: int = Field(ge=0, description="outcomes joined with this version's predictions")
    measures: dict[str, float]


class Evidence(_Record):
    """What a promotion was judged on."""

    metric: str
    higher_is_better: bool
    margin: float = Field(ge=0.0)
    min_outcomes: int = Field(ge=0)
    live: VersionQuality | None
    candidate: VersionQuality | None
    reason: str = Field(max_length=1000)


class ModelEvent(_Record):
    """The latest decision about one service's model, and the version it serves since."""

    service: Name
    decision: Decision
    version: Name = Field(description="the version the decision is about")
    live_version: Name = Field(description="the version every instance serves after this decision")
    replaced: tuple[Name, ...] = Field(default=(), max_length=64,
                                       description="earlier live versions, newest last (rollback pops one)")
    forced: bool = False
    evidence: Evidence | None = None
    requested_by: str = Field(min_length=1, max_length=200)
    at_ms: int = Field(ge=0)
    sequence: int = Field(ge=1, description="1 for a service's first decision, +1 for each one after")


class QualitySnapshot(_Record):
    """The monitor's current measures of one (service, version) over its window."""

    service: Name
    model_version: Name
    outcomes: int = Field(ge=0, description="pairs joined since the monitor started")
    window: int = Field(ge=0, description="samples the measures are computed over")
    measures: dict[str, float]
    baseline: dict[str, float]
    at_ms: int = Field(ge=0)
