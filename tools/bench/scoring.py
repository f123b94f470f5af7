"""A service's own scorer run in this process, for the baseline loops, the peer and the model limit.

:class:`ServiceHarness` decodes raw records with the runtime's decoder, scores them with the
service's scorer and builds the same records (lineage headers included) the runtime would
publish, but without the runtime's batching, delivery or changelog: the baselines score
exactly what shopstream scores, so only the streaming machinery differs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.kafka.message import Headers, MessageLike
from shared.models.session import OnnxModel
from shared.models.slot import GraphTransform
from shared.runtime.codec import DeadLetterRecord, RecordDecoder
from shared.runtime.delivery import OutRecord
from shared.runtime.model_scorer import ModelScorer
from shared.runtime.records import Pending, RecordBuilder
from shared.runtime.scorer import LoadContext
from shared.runtime.state import StateStore
from tools.bench.record_set import RECORD_SET_EVENTS, RecordSet, RecordSetBuilder
from tools.bench.wiring import MODELS_DIR

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawRecord:
    """A consumed record as plain data (satisfies :class:`MessageLike`)."""

    topic_: str
    partition_: int
    offset_: int
    key_: bytes | None
    value_: bytes | None
    timestamp_ms: int

    def topic(self) -> str | None:
        return self.topic_

    def partition(self) -> int | None:
        return self.partition_

    def offset(self) -> int | None:
        return self.offset_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_

    def headers(self) -> Headers | None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return 1, self.timestamp_ms

    def error(self) -> Any:
        return None


class ServiceHarness:
    """Load ``service``'s scorer from the repo's models; ``topics`` as in :func:`bench_topics`."""

    def __init__(self, service: str, topics: Mapping[str, str] | None = None, state: Any = None,
                 **overrides: Any) -> None:
        from services.registry import load_service

        spec = load_service(service)
        self.settings = spec.settings_class(**{"models_dir": MODELS_DIR, **(topics or {}), **overrides})
        self.scorer = spec.create_scorer(self.settings)
        self.state = state if state is not None else StateStore()
        self.scorer.load(LoadContext(settings=self.settings, state=self.state if self.scorer.stateful else None))
        s = self.settings
        self.decoder = RecordDecoder(self.scorer, s.service_name, s.runtime.max_message_bytes,
                                     s.runtime.dlq_message_max_chars)
        self.builder = RecordBuilder(self.decoder, s.output_topic, s.resolved_dlq_topic, s.resolved_changelog_topic)

    @property
    def roles(self) -> dict[str, str]:
        """Each topic this harness writes → its settings field (``output_topic``, ``dlq_topic``...)."""
        s = self.settings
        roles = {str(getattr(s, name)): name for name in type(s).model_fields
                 if name.endswith("_topic") and name != "input_topic" and getattr(s, name)}
        return {**roles, s.resolved_dlq_topic: "dlq_topic", s.resolved_changelog_topic: "changelog_topic"}

    @property
    def model_name(self) -> str:
        return str(getattr(self.settings, "model_name", self.settings.service_name))

    def score(self, messages: Sequence[MessageLike]) -> list[OutRecord]:
        """Scores and dead letters for ``messages``, scored as one batch."""
        pending: list[Pending] = []
        letters: list[DeadLetterRecord] = []
        for msg in messages:
            decoded = self.decoder.decode(msg)
            if isinstance(decoded, DeadLetterRecord):
                letters.append(decoded)
            else:
                pending.append(Pending(decoded, msg, 0.0))
        records: list[OutRecord] = []
        if pending:
            results = self.scorer.score([p.event for p in pending])
            scored, rejected = self.builder.scored(pending, results, self.scorer.model_info,
                                                   self.scorer.schema_version)
            records.extend(scored)
            letters.extend(rejected)
        return records + self.builder.dead_letters(letters)

    def changelog(self) -> list[OutRecord]:
        """The state changed since the last call, as the runtime's changelog records."""
        if not isinstance(self.state, StateStore):
            return []
        return self.builder.changelog(self.state.drain_changes())

    def close(self) -> None:
        self.scorer.close()


def as_records(pairs: Sequence[tuple[bytes, bytes]], topic: str = "bench", partitions: int = 1) -> list[RawRecord]:
    return [RawRecord(topic, i % partitions, i, k, v, 1_700_000_000_000 + i) for i, (k, v) in enumerate(pairs)]


Feeds = dict[str, np.ndarray]


@contextmanager
def recording_model_calls() -> Iterator[list[tuple[str, Feeds]]]:
    """Record ``(model name, feeds)`` of every ``OnnxModel.run`` in this process meanwhile."""
    calls: list[tuple[str, Feeds]] = []
    original = OnnxModel.run

    def spy(self: OnnxModel, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append((self.name, {k: np.array(v) for k, v in feeds.items()}))
        return original(self, feeds)

    OnnxModel.run = spy  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        OnnxModel.run = original  # type: ignore[method-assign]


@dataclass(frozen=True)
class CapturedFeeds:
    """The main model's largest feeds, and its rows per input event over the whole capture."""

    model: str
    feeds: Feeds
    rows_per_event: float
    """Model rows per input event: several candidates per event, or fewer rows than events
    when some events are answered without the model (cold-start users, dead letters)."""
    record_set: RecordSet
    """What the service wrote for (a sample of) the events: the I/O limit replays it."""
    transform: GraphTransform | None = None
    """How the service rewrites its model's graph before serving it (recommendation appends its
    masking and top-K): the model limit times the graph the service runs, for the feeds it gave."""
    batches: Callable[[int, str], list[Feeds]] | None = None
    """``batches(n, provider)``: the graph calls the service makes for the events in micro-batches
    of ``n``, where tiling one captured call would misstate the work (a text model groups each
    micro-batch by length and pads each group to its longest: :mod:`tools.bench.text`); ``None``:
    the captured feeds, tiled."""
    max_batch: int | None = None
    """The largest batch worth sweeping: with :attr:`batches`, the service's own ``max_batch_size``
    (it never runs a larger micro-batch); ``None``: no bound but the sweep's."""


def _rows(feeds: Feeds) -> int:
    return int(next(iter(feeds.values())).shape[0])


def _scored_batches(harness: ServiceHarness, records: Sequence[RawRecord], batch: int,
                    builder: RecordSetBuilder) -> Iterator[None]:
    """Score ``records`` in batches (state builds up as in the service); yields after each batch."""
    for start in range(0, len(records), batch):
        chunk = records[start:start + batch]
        builder.add(chunk, [*harness.score(chunk), *harness.changelog()])
        yield


def capture_feeds(harness: ServiceHarness, pairs: Sequence[tuple[bytes, bytes]], batch: int = 256,
                  keep_records: int = RECORD_SET_EVENTS) -> CapturedFeeds:
    """Score ``pairs`` in batches of ``batch``: the tensors the service's own feature code built
    for its main model, and the records it wrote for about ``keep_records`` of the events."""
    records = as_records(pairs)
    builder = RecordSetBuilder(harness.roles, len(records), keep_records)
    scoring_calls: list[Feeds] = []
    rows = 0
    with recording_model_calls() as calls:
        for _ in _scored_batches(harness, records, batch, builder):
            model_calls = [feeds for name, feeds in calls if name == harness.model_name]
            # Every call is model work the service does per event (recommendation scores a batch in
            # several calls, one per group of similar history lengths; fraud's second call explains
            # flagged rows); the feeds to time are those of a call that scores a batch, the first.
            rows += sum(_rows(f) for f in model_calls)
            scoring_calls += model_calls[:1]
            del calls[:]
    if not scoring_calls:
        raise RuntimeError(f"scoring {len(pairs)} events never called model {harness.model_name!r}")
    scorer = harness.scorer
    return CapturedFeeds(harness.model_name, max(scoring_calls, key=_rows), rows / max(len(records), 1),
                         builder.build(), scorer.graph_transform() if isinstance(scorer, ModelScorer) else None)


def capture_record_set(harness: ServiceHarness, pairs: Sequence[tuple[bytes, bytes]], batch: int = 256,
                       keep: int = RECORD_SET_EVENTS) -> RecordSet:
    """The records the service writes for ``pairs`` (for scorers without a model, such as echo)."""
    records = as_records(pairs)
    builder = RecordSetBuilder(harness.roles, len(records), keep)
    for _ in _scored_batches(harness, records, batch, builder):
        pass
    return builder.build()
