"""The one loop: poll → decode → micro-batch → score → publish → commit, one turn at a time.

A turn takes what the consumer has ready without waiting, and blocks only when there is nothing
to do: no open batch, no dead letters, no retry due; then until the next record arrives, a retry
falls due, or :data:`IDLE_POLL_S` passes. A batch is scored as soon as the consumer has nothing
more ready ("batch what is there"): a lone event never waits for company that is not coming, and
under load, records that arrive while a batch is scored make the next batch larger by themselves.
``max_wait_ms`` only lets a batch grow while the consumer keeps handing over records.
A scorer that raises does not get a loop of its own: its batch is kept aside with the time of its
next try (:class:`shared.runtime.retry.FailedBatch`), consumption pauses, and the turns go on
serving the consumer group, the producer's acknowledgements and the offset commits until the
retry is due. The batch is then scored again, against the state as it was before the failed try;
a batch that keeps failing is halved until the record that trips the scorer is found and
dead-lettered, unless the scorer fails on everything. Consumption resumes once the whole batch is
scored or dead-lettered. Failed deliveries come back from :meth:`Delivery.take_rewinds` and are
applied here.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import TopicPartition

from shared.errors import ConsumerOrphaned
from shared.kafka.message import MessageLike
from shared.kafka.protocols import ConsumerLike
from shared.runtime.batcher import Batcher
from shared.runtime.codec import DeadLetterRecord, RecordDecoder
from shared.runtime.collector import BatchCollector
from shared.runtime.delivery import Delivery
from shared.runtime.end_offsets import EndOffsets
from shared.runtime.events import ClientEvents
from shared.runtime.health import HealthState
from shared.runtime.metrics import RuntimeMetrics
from shared.runtime.pause import Backoff, PauseController
from shared.runtime.pipeline import BatchPipeline
from shared.runtime.rebalance import Assignment
from shared.runtime.records import Pending
from shared.runtime.retry import SCORER_ERROR, FailedBatch, Next
from shared.runtime.scorer import Event, Scorer
from shared.runtime.scoring import probe
from shared.runtime.stalls import StallWatch
from shared.runtime.state import StateStore

logger = logging.getLogger(__name__)

IDLE_POLL_S = 0.1
ACK_POLL_S = 0.005
"""The longest idle wait while produced records await their acknowledgement: acks are served
between polls, and the offsets they release are committed no later than this after they come."""
MAX_POLL_RECORDS = 1000
STALL_CHECK_S = 0.5
REJOIN_TIMEOUT_S = 60.0
"""How long a consumer whose partitions were lost may wait, brokers answering, for an assignment."""


@dataclass(slots=True)
class LoopParts:
    """What the loop turns: the clients and the runtime's parts, wired by :class:`ServiceApp`."""

    scorer: Scorer[Any]
    state: StateStore | None
    metrics: RuntimeMetrics
    health: HealthState
    consumer: ConsumerLike
    delivery: Delivery
    pipeline: BatchPipeline
    decoder: RecordDecoder
    batcher: Batcher[Pending]
    pauses: PauseController
    events: ClientEvents
    assignment: Assignment
    restore: Callable[[Iterable[int]], object]
    scorer_backoff: Backoff
    max_inflight: int
    stalls: StallWatch
    end_offsets: EndOffsets
    split_after_failures: int
    """A failed batch is retried whole this many times before it is halved to find a poison record."""
    poison_after_failures: int
    """A record failing alone this many times is dead-lettered if the scorer works for others."""
    clock: Callable[[], float] = time.monotonic
    collector: BatchCollector = field(default_factory=lambda: BatchCollector(float("inf")))
    """Runs the garbage collector after each batch (inert unless started in the main thread)."""


class StreamLoop:
    def __init__(self, parts: LoopParts) -> None:
        self.parts = parts
        self.dead: list[DeadLetterRecord] = []
        self.retry: FailedBatch | None = None
        self.last_scored: Event[Any] | None = None
        """An event that scored, to probe whether the scorer works when a record fails alone."""
        self._evictions_exported: Counter[str] = Counter()
        self._next_stall_check = 0.0
        self._orphaned_since: float | None = None
        self._stall_labels: set[int] = set()
        service, topic = parts.metrics.service, parts.assignment.topic
        self._consumed_total = parts.metrics.consumed.labels(service, topic)

    def turn(self) -> None:
        """One pass: rewinds and pauses, one poll, a batch if one is due, acks and commits."""
        p = self.parts
        p.events.raise_if_fatal()
        p.health.last_loop_at = time.monotonic()  # read against the real clock by /healthz
        self._apply_rewinds()
        p.pauses.resume_expired()
        p.pauses.backpressure(max(p.delivery.inflight(), p.delivery.tracker.pending_records()), p.max_inflight)
        wanted = min(max(p.batcher.room, 1), MAX_POLL_RECORDS)
        messages = self._poll(wanted)
        self._accept(messages)
        self._consumed_total.inc(len(messages))
        self._flush_if_due(drained=len(messages) < wanted)
        p.delivery.producer.poll(0)
        p.delivery.maybe_commit(p.consumer)
        p.scorer.between_batches()
        self._check_orphaned()
        self._check_stalls()
        self._update_gauges()

    def _poll(self, wanted: int) -> list[Any]:
        """What the consumer has ready now; if nothing and nothing else is to be done, wait for
        the first record (``consume`` would wait for all ``wanted`` of them) and take the rest."""
        p = self.parts
        messages = list(p.consumer.consume(num_messages=wanted, timeout=0))
        if messages or len(p.batcher) or self.dead:
            return messages
        first = p.consumer.poll(self.poll_timeout())
        if first is None:
            return []
        return [first, *p.consumer.consume(num_messages=wanted - 1, timeout=0)] if wanted > 1 else [first]

    def poll_timeout(self) -> float:
        """How long an idle turn may wait for a record: never past a retry's time, and briefly
        while acknowledgements are awaited."""
        p = self.parts
        until = self.retry.due_at - p.clock() if self.retry is not None else IDLE_POLL_S
        if p.delivery.inflight():
            until = min(until, ACK_POLL_S)
        return min(max(until, 0.0), IDLE_POLL_S)

    def _accept(self, messages: list[Any]) -> None:
        p = self.parts
        kept: list[MessageLike] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                p.events.on_consume_error(err)
            elif msg.partition() in p.assignment:  # else revoked inside the fetching call: its next owner reads it
                kept.append(cast(MessageLike, msg))
        arrived = time.monotonic()
        for msg, decoded in zip(kept, p.decoder.decode_many(kept), strict=True):
            if isinstance(decoded, DeadLetterRecord):
                self.dead.append(decoded)
            else:
                p.batcher.add(Pending(decoded, msg, arrived), decoded.timestamp_ms)

    def _flush_if_due(self, drained: bool) -> None:
        """``drained``: the consumer had nothing more ready, so waiting would only add latency."""
        batcher = self.parts.batcher
        if self.retry is not None:
            if self.parts.clock() >= self.retry.due_at:
                self._retry_first_part(self.retry)
                self.parts.collector.after_batch()
        elif batcher.is_due() or self.dead or (drained and len(batcher)):
            self.run_batch(self._take())
            self.parts.collector.after_batch()

    def _take(self) -> list[Pending]:
        batch = self.parts.batcher.take()
        if batch:
            wait = time.monotonic() - batch[0].arrived_at
            self.parts.metrics.queue_wait.labels(self.parts.metrics.service).observe(wait)
        return batch

    def run_batch(self, batch: list[Pending]) -> None:
        """Score ``batch`` (kept for a retry if the scorer raises), then publish it and the dead letters."""
        if not batch:
            self._publish([], [])  # only dead letters
            return
        error = self._score_and_publish(batch)
        if error is not None:
            self.retry = FailedBatch.of(batch, self.parts.clock())
            self._scoring_failed(self.retry, error)

    def _score_and_publish(self, batch: list[Pending]) -> Exception | None:
        """One try; what the scorer raised, or ``None`` once the results are published."""
        try:
            scored, elapsed = self.parts.pipeline.score(batch)
        except Exception as exc:
            return exc
        self.parts.batcher.observe_inference(elapsed * 1000)
        self.last_scored = batch[-1].event
        self._publish(batch, list(scored))
        return None

    def _publish(self, batch: list[Pending], results: list[Any]) -> None:
        dead, self.dead = self.dead, []
        self.parts.pipeline.publish(self.parts.consumer, batch, results, dead, self.parts.assignment)

    def _retry_first_part(self, retry: FailedBatch) -> None:
        error = self._score_and_publish(retry.head)
        if error is not None:
            self._scoring_failed(retry, error)
            return
        retry.scored()
        if retry.done:
            logger.info("scorer recovered; resuming consumption")
            self._end_retry()
        else:
            retry.due_at = self.parts.clock()  # the rest of the batch goes on at once

    def _scoring_failed(self, retry: FailedBatch, exc: Exception) -> None:
        p = self.parts
        head = retry.head[0].event
        p.metrics.errors.labels(p.metrics.service, "scoring").inc()
        p.health.scorer_failing = type(exc).__name__
        p.pauses.pause("scorer")
        step = retry.failed(p.split_after_failures, p.poison_after_failures)
        if step is Next.SPLIT:
            logger.warning("a batch keeps failing; halving it to find the record that trips the scorer "
                           "(%d events left, next part of %d): %r", len(retry), len(retry.head), exc)
            retry.due_at = p.clock()
            return
        if step is Next.JUDGE and (retry.scored_any or self._scorer_works()):
            self._dead_letter_poison(retry, exc)
            return
        delay = p.scorer_backoff.failed()
        logger.error(
            "scoring failed for %d events (first partition=\"%s[%d]\" offset=%d), retrying in %.1fs: %r",
            len(retry.head), head.topic, head.partition, head.offset, delay, exc,
        )
        retry.due_at = p.clock() + delay

    def _scorer_works(self) -> bool:
        """Probe with an event that scored before: if it still scores, the failure is the record's."""
        p = self.parts
        return self.last_scored is not None and probe(p.scorer, self.last_scored, p.state)

    def _dead_letter_poison(self, retry: FailedBatch, exc: Exception) -> None:
        p = self.parts
        poison = retry.take_poison()
        event = poison.event
        logger.error("dead-lettering the record at partition=\"%s[%d]\" offset=%d: the scorer raised on it "
                     "alone %d times while it scores other records: %r",
                     event.topic, event.partition, event.offset, p.poison_after_failures, exc)
        self.dead.append(p.decoder.dead_letter(poison.message, type(exc).__name__, SCORER_ERROR, str(exc)))
        if retry.done:
            self._end_retry()  # the dead letter goes out with the next turn's flush
        else:
            retry.due_at = p.clock()

    def _end_retry(self) -> None:
        self.retry = None
        self.parts.scorer_backoff.reset()
        self.parts.health.scorer_failing = None
        self.parts.pauses.resume("scorer")

    def drop_partitions(self, numbers: set[int]) -> int:
        """Forget the unscored events of ``numbers`` (revoked or rewound); returns how many."""
        dropped = self.parts.batcher.drop(lambda p: p.event.partition not in numbers)
        self.dead = [d for d in self.dead if d.partition not in numbers]
        if self.retry is not None:
            dropped += self.retry.drop_partitions(numbers)
            if self.retry.done:  # nothing left to retry: the next batch tells whether the scorer works
                self._end_retry()
        return dropped

    def _apply_rewinds(self) -> None:
        """Seek partitions back after a failed delivery or an aborted transaction."""
        p = self.parts
        rewinds = p.delivery.take_rewinds()
        offsets = {part: o for part, o in rewinds.offsets.items() if part in p.assignment}
        if not offsets:
            return
        logger.warning("rewinding partitions %s to score them again", offsets)
        self.drop_partitions(set(offsets))
        aborted = rewinds.aborted & set(offsets)
        if p.state is not None and aborted:
            p.state.drop_partitions(aborted)
            p.restore(sorted(aborted))
        for partition, offset in offsets.items():
            p.consumer.seek(TopicPartition(p.assignment.topic, partition, offset))

    def _check_orphaned(self) -> None:
        """Crash-only answer to a consumer that lost its partitions and is never assigned again:
        seen once after a whole-cluster restart (no error, no rebalance, unready for good). The
        clock runs only while the brokers answer, so an outage of any length is waited out."""
        p = self.parts
        if p.health.lost_at is None or p.health.brokers_down:
            self._orphaned_since = None
            return
        now = p.clock()
        if self._orphaned_since is None:
            self._orphaned_since = now
        elif now - self._orphaned_since > REJOIN_TIMEOUT_S:
            raise ConsumerOrphaned(f"partitions lost and not assigned again within {REJOIN_TIMEOUT_S:.0f} s of the "
                                   "brokers answering; exiting so a restart brings a fresh consumer")

    def _check_stalls(self) -> None:
        """Name the partitions that have records waiting and made no progress (docs: stalls.py)."""
        p = self.parts
        now = p.clock()
        if now < self._next_stall_check:
            return
        self._next_stall_check = now + STALL_CHECK_S
        topic, service = p.assignment.topic, p.metrics.service
        p.end_offsets.watch(p.assignment.partitions)
        ends = p.end_offsets.latest
        waiting = {q: ends[q] - fetched for q, fetched in p.assignment.positions.items() if q in ends}
        started, ended = p.stalls.check(p.assignment.partitions, waiting, p.pauses.paused)
        if started:
            logger.warning("partitions %s of %s have records waiting and made no progress for %.0f s",
                           sorted(started), topic, p.stalls.after_s)
            p.metrics.partition_stalls.labels(service, topic).inc(len(started))
        if ended:
            logger.info("partitions %s of %s make progress again", sorted(ended), topic)
        p.health.stalled = tuple(f"{topic}[{n}]" for n in sorted(p.stalls.stalled))
        for partition in p.assignment.partitions:
            label = str(partition)
            p.metrics.partition_stalled.labels(service, topic, label).set(1 if partition in p.stalls.stalled else 0)
            p.metrics.partition_progress.labels(service, topic, label).set(p.stalls.progress_wall_time[partition])
        for gone in self._stall_labels - p.assignment.partitions:
            p.metrics.partition_stalled.remove(service, topic, str(gone))
            p.metrics.partition_progress.remove(service, topic, str(gone))
        self._stall_labels = set(p.assignment.partitions)

    def _update_gauges(self) -> None:
        p = self.parts
        service = p.metrics.service
        p.metrics.inflight.labels(service).set(p.delivery.inflight())
        p.metrics.ready.labels(service).set(1 if p.health.ready() else 0)
        if p.state is not None:
            p.metrics.state_entries.labels(service).set(len(p.state))
            p.metrics.state_bytes.labels(service).set(p.state.bytes_held())
            for reason, total in p.state.evicted.items():  # the store counts; the metric follows it
                if total > self._evictions_exported[reason]:
                    p.metrics.state_evictions.labels(service, reason).inc(total - self._evictions_exported[reason])
                    self._evictions_exported[reason] = total

    def drain(self, deadline: float) -> None:
        """Finish the open batch (unless the scorer is failing), flush and commit, by ``deadline``
        (``time.monotonic()`` seconds: the shutdown deadline is real time)."""
        p = self.parts
        logger.info("draining: %d buffered events", len(p.batcher))
        if self.retry is None and (len(p.batcher) or self.dead):
            self.run_batch(self._take())
        remaining = p.delivery.producer.flush(max(deadline - time.monotonic(), 0.1))
        p.delivery.maybe_commit(p.consumer, force=True)
        logger.info("drained (%d records still unacknowledged)", remaining)
