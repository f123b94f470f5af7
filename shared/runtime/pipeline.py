"""One batch's way through the scorer and out to Kafka.

:meth:`BatchPipeline.score` runs one try of the scorer through
:func:`shared.runtime.scoring.score_batch`, so the batch's state writes are staged and applied
only when ``score()`` returns; a raise leaves the state as it was and propagates to the loop,
which keeps the batch for a retry. :meth:`BatchPipeline.publish` turns the results, the dead
letters and the state changes into records and hands them to the delivery strategy as one unit.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Container, Sequence
from typing import Any

from shared.kafka.protocols import ConsumerLike
from shared.runtime.codec import DeadLetterRecord
from shared.runtime.delivery import Delivery, OutRecord
from shared.runtime.metrics import RuntimeMetrics
from shared.runtime.records import Pending, RecordBuilder
from shared.runtime.scorer import Scorer, ScoreResult
from shared.runtime.scoring import score_batch
from shared.runtime.state import StateStore

logger = logging.getLogger(__name__)


class BatchPipeline:
    def __init__(self, scorer: Scorer[Any], state: StateStore | None, metrics: RuntimeMetrics,
                 builder: RecordBuilder, delivery: Delivery) -> None:
        self._scorer = scorer
        self._state = state
        self._metrics = metrics
        self._builder = builder
        self._delivery = delivery
        self._service = metrics.service

    def score(self, batch: Sequence[Pending]) -> tuple[Sequence[ScoreResult], float]:
        """One try: the results and the seconds scoring took. Raises what the scorer raised."""
        started = time.perf_counter()
        results = score_batch(self._scorer, [p.event for p in batch], self._state)
        elapsed = time.perf_counter() - started
        self._metrics.batch_size.labels(self._service).observe(len(batch))
        self._metrics.inference.labels(self._service, self._scorer.model_info.version).observe(elapsed)
        self._record_business(results)
        return results, elapsed

    def _record_business(self, results: Sequence[ScoreResult]) -> None:
        try:
            self._scorer.record_business_metrics(self._service, results, self._metrics.business)
        except Exception:  # a dashboard metric must never stop scoring
            logger.exception("recording business metrics failed")

    def publish(self, consumer: ConsumerLike, batch: Sequence[Pending], results: Sequence[ScoreResult],
                dead: Sequence[DeadLetterRecord], assigned: Container[int]) -> None:
        """Produce the records of partitions still ``assigned`` as one delivery unit."""
        kept = [(p, r) for p, r in zip(batch, results, strict=True) if p.event.partition in assigned]
        batch, results = [p for p, _ in kept], [r for _, r in kept]
        records, rejected = self._builder.scored(batch, results, self._scorer.model_info,
                                                 self._scorer.schema_version)
        for topic, count in Counter(record.topic for record in records).items():
            self._metrics.outputs.labels(self._service, topic).inc(count)
        letters = [d for d in [*dead, *rejected] if d.partition in assigned]
        records.extend(self._dead_letters(letters))
        if self._state is not None:
            records.extend(self._builder.changelog(self._state.drain_changes()))
        offsets: dict[int, list[int]] = defaultdict(list)
        for p in batch:
            offsets[p.event.partition].append(p.event.offset)
        for letter in letters:
            offsets[letter.partition].append(letter.offset)
        if offsets:
            unit = self._delivery.tracker.open_unit(dict(offsets), [p.event.timestamp_ms for p in batch])
            self._delivery.publish(unit, records, consumer)

    def _dead_letters(self, letters: Sequence[DeadLetterRecord]) -> list[OutRecord]:
        for letter in letters:
            self._metrics.dead_lettered.labels(self._service, self._delivery.input_topic, letter.reason).inc()
        return self._builder.dead_letters(letters)
