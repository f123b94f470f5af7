"""Read a batch, score it, write it, commit it: the replay's loop, with the runtime's own parts.

Records are decoded, scored and turned into records by :class:`~shared.runtime.codec.RecordDecoder`,
:func:`~shared.runtime.scoring.score_batch` and :class:`~shared.runtime.records.RecordBuilder`, as
the live service does, so a replay with the live version writes what the service wrote, lineage
headers included. A batch is committed (to the replay's own group) only once every record derived
from it is acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from shared.errors import ScoringError
from shared.kafka.message import MessageLike
from shared.runtime.codec import DeadLetterRecord, RecordDecoder
from shared.runtime.records import Pending, RecordBuilder
from shared.runtime.scorer import Scored, Scorer
from shared.runtime.scoring import score_batch
from shared.runtime.state import StateStore
from shared.settings import ServiceSettings
from tools.replay.progress import ReplayProgress
from tools.replay.reader import RangeReader
from tools.replay.summary import ReplaySummary
from tools.replay.writer import ReplayWriter


class ReplayLoop:
    """Read a batch, score it, write it, commit it, until every partition reached its end."""

    def __init__(self, settings: ServiceSettings, scorer: Scorer[Any], state: StateStore | None, reader: RangeReader,
                 writer: ReplayWriter, summary: ReplaySummary) -> None:
        rt = settings.runtime
        self._scorer = scorer
        self._state = state
        self._reader = reader
        self._writer = writer
        self._summary = summary
        self._decoder = RecordDecoder(scorer, settings.service_name, rt.max_message_bytes, rt.dlq_message_max_chars)
        # the changelog topic is never written (the store's changes are drained and dropped); no feedback copies
        self._builder = RecordBuilder(self._decoder, writer.to_topic, writer.dlq_topic, changelog_topic="")

    def run(self, progress: ReplayProgress) -> None:
        started = time.monotonic()
        progress.start(self._summary.total)
        try:
            self._reader.open()
            while not self._reader.done:
                messages = self._reader.read()
                if messages:
                    self._batch(messages)
                    progress.advance(len(messages))
                self._summary.seconds = time.monotonic() - started
            self._reader.commit(asynchronous=False)
        finally:
            progress.stop()
        self._summary.dropped = dict(self._writer.dropped)

    def _batch(self, messages: Sequence[MessageLike]) -> None:
        decoded = self._decoder.decode_many(messages)
        dead = [d for d in decoded if isinstance(d, DeadLetterRecord)]
        batch = [Pending(d, m, 0.0) for m, d in zip(messages, decoded, strict=True)
                 if not isinstance(d, DeadLetterRecord)]
        results = self._score(batch)
        records, rejected = self._builder.scored(batch, results, self._scorer.model_info, self._scorer.schema_version)
        records.extend(self._builder.dead_letters([*dead, *rejected]))
        if self._state is not None:
            self._state.drain_changes()  # also enforces the store's byte bound, as the live runtime's drain does
        self._writer.write(records)
        self._writer.flush()
        self._reader.commit()
        self._scorer.between_batches()
        self._count(messages, batch, results)

    def _score(self, batch: list[Pending]) -> Sequence[Any]:
        if not batch:
            return []
        try:
            return score_batch(self._scorer, [p.event for p in batch], self._state)
        except Exception as exc:  # the live service would retry; a replay stops, saying where
            first, last = batch[0].event, batch[-1].event
            raise ScoringError(f"scoring {len(batch)} records ({first.topic}[{first.partition}]@{first.offset} "
                               f"to [{last.partition}]@{last.offset}) failed: {exc!r}") from exc

    def _count(self, messages: Sequence[MessageLike], batch: list[Pending], results: Sequence[Any]) -> None:
        s = self._summary
        s.read += len(messages)
        s.scored += sum(1 for r in results if isinstance(r, Scored))
        s.rejected += len(messages) - len(batch) + sum(1 for r in results if not isinstance(r, Scored))
        s.written = self._writer.written
        earliest = min(ts for _, ts in (m.timestamp() for m in messages))
        s.first_timestamp_ms = earliest if s.first_timestamp_ms is None else min(s.first_timestamp_ms, earliest)
