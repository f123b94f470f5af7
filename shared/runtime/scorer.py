"""The contract between the runtime and a service: a small scorer with no Kafka code.

Lifecycle, as the runtime drives it:

1. ``load(context)`` once, before the first poll. Raising here stops the process.
2. ``on_assign(partitions)`` after partitions are assigned and their state restored.
3. ``score(batch)`` for each micro-batch of validated events, from one thread.
   It returns exactly one :class:`Scored` or :class:`Rejected` per input event, in order.
   Raising means "the model failed": the runtime pauses, backs off and retries the
   same batch; it never dead-letters events because the scorer raised.
4. ``between_batches()`` after every batch and on idle polls (hot swap checks go here).
5. ``on_revoke(partitions)`` before partitions go away; their state is dropped after it.
6. ``close()`` on shutdown. It is not guaranteed to be called after a crash.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, TypeVar

from pydantic import BaseModel

from shared.agreement import AgreementView
from shared.models.info import ModelInfo
from shared.runtime.config import ConfigSource, StaticConfig

__all__ = ["Event", "LoadContext", "ModelInfo", "Output", "Rejected", "Scored", "Scorer", "outputs_of"]

if TYPE_CHECKING:
    from shared.models.slot import SlotMetrics
    from shared.runtime.metrics import BusinessMetrics
    from shared.runtime.state import StateStore
    from shared.settings import ServiceSettings

EventT = TypeVar("EventT", bound=BaseModel)


class Event(NamedTuple, Generic[EventT]):
    """A validated input record and where it came from.

    Immutable, and a NamedTuple rather than a frozen dataclass: one is built per input record, and
    a frozen dataclass's ``__init__`` (``object.__setattr__`` per field) cost 1.6 us against 0.4."""

    value: EventT
    key: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    """The record's timestamp (event time when producers set it)."""


@dataclass(frozen=True, slots=True)
class Output:
    """One record to publish. ``topic=None`` means the service's main output topic.

    ``value`` is a model instance, or its JSON already encoded (a
    :class:`shared.schemas.rows.RowEncoder` writes a batch's outputs that way, in bulk)."""

    value: BaseModel | bytes
    key: str | None = None
    """Defaults to the input event's key."""
    topic: str | None = None
    model: ModelInfo | None = None
    """The version that scored it, when not the one the scorer reports for the batch (a canary's
    or a shadow's candidate); its lineage headers name it."""


@dataclass(frozen=True, slots=True)
class Scored:
    """The outputs derived from one input event (usually one)."""

    outputs: Sequence[Output]


@dataclass(frozen=True, slots=True)
class Rejected:
    """The event is valid JSON but cannot be scored (e.g. unknown item id): dead-letter it."""

    reason: str
    detail: str


ScoreResult = Scored | Rejected
OutT = TypeVar("OutT", bound=BaseModel)


def outputs_of(results: Sequence[ScoreResult], kind: type[OutT]) -> list[OutT]:
    """The output values of one model class in a batch's results (for business metrics)."""
    return [
        out.value for r in results if isinstance(r, Scored) for out in r.outputs if isinstance(out.value, kind)
    ]


@dataclass(slots=True)
class LoadContext:
    """What the runtime hands a scorer at load time."""

    settings: ServiceSettings
    state: StateStore | None = None
    """The keyed state store, for scorers with ``stateful = True``. Writes are staged per batch."""
    config: ConfigSource = field(default_factory=StaticConfig)
    """The service's config topic (``settings.config_topic``), read and kept fresh by the runtime."""
    model_metrics: SlotMetrics | None = None
    """Where model slots report the serving version and refused versions."""
    model_events: ConfigSource = field(default_factory=StaticConfig)
    """The model-events topic (``settings.model_events_topic``): key = service, value = the latest
    promotion or rollback (:class:`shared.schemas.rollout.ModelEvent`)."""


class Scorer(ABC, Generic[EventT]):
    """Base class of every service's scorer."""

    input_schema: ClassVar[type[BaseModel]]
    """The pydantic model that validates input records."""
    output_schema: ClassVar[type[BaseModel]]
    """The pydantic model of the main output (documentation and JSON Schema)."""
    schema_version: ClassVar[str] = "1"
    stateful: ClassVar[bool] = False
    """``True`` makes the runtime provide a changelog-backed :class:`StateStore`."""
    supports_rollout: ClassVar[bool] = False
    """``True`` (every :class:`~shared.runtime.model_scorer.ModelScorer`): the scorer runs shadow and
    canary candidates and follows model decisions, so the runtime creates and follows their topics."""

    @abstractmethod
    def load(self, context: LoadContext) -> None:
        """Load models and resources. Called once before consuming; errors stop the process."""

    @abstractmethod
    def score(self, batch: Sequence[Event[EventT]]) -> Sequence[ScoreResult]:
        """Score a micro-batch: one result per event, in order. Raise on model failure."""

    def key_of(self, event: EventT) -> str | None:
        """The entity key of an event, used when the record has no Kafka key. ``None``: reject."""
        return None

    @property
    def model_info(self) -> ModelInfo:
        """The model serving right now (read per batch for lineage)."""
        return ModelInfo(name=type(self).__name__, version="0", sha256="")

    def agreement_view(self, output: dict[str, Any]) -> AgreementView | None:
        """The parts of a main output (as its JSON) that two model versions are compared on: its
        scores, the decision the shop acts on and its ranking (:mod:`shared.agreement`). Used by a
        shadow rollout and ``shopstream replay --compare``; ``None``: this scorer's outputs are
        not compared."""
        return None

    def extra_output_topics(self) -> Sequence[str]:
        """Topics besides the main output this scorer writes (for topic creation and ACLs)."""
        return ()

    def compacted_output_topics(self) -> Sequence[str]:
        """Compacted topics this scorer writes (latest value per key), created with compaction on."""
        return ()

    def on_assign(self, partitions: Sequence[int]) -> None:
        """Hook: partitions of the input topic were assigned (state already restored)."""

    def on_revoke(self, partitions: Sequence[int]) -> None:
        """Hook: partitions are about to be revoked (their state is dropped afterwards)."""

    def record_business_metrics(
        self, service: str, results: Sequence[ScoreResult], metrics: BusinessMetrics
    ) -> None:
        """Hook: after each scored batch, record what the outputs mean for the shop (decision mix,
        score distribution, price changes, coverage). Errors are logged, never fatal."""

    def between_batches(self) -> None:
        """Hook: called between batches and on idle polls; must be cheap. Hot swaps go here."""

    def close(self) -> None:
        """Hook: release resources on a clean shutdown (not called after a crash)."""
