"""The one streaming loop every service runs: poll → validate → micro-batch → score → produce → commit.

A service hands :class:`ServiceApp` its settings and scorer and calls :meth:`ServiceApp.run`.
Guarantees (see ``docs/runtime.md``): input offsets are committed only after every record
derived from them is acknowledged (or inside the same transaction in exactly-once mode); bad
records go to the DLQ and the rest keep flowing; a failing scorer pauses consumption and turns
readiness off instead of dead-lettering good events; SIGTERM drains within a deadline.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from shared.kafka.clients import is_fatal, make_consumer, make_producer, partition_lags
from shared.kafka.message import MessageLike
from shared.models.slot import use_process_metrics
from shared.runtime.batcher import Batcher
from shared.runtime.codec import DECODE_REASONS, DeadLetterRecord, RecordDecoder
from shared.runtime.delivery import AtLeastOnce, Delivery, ExactlyOnce, OutRecord
from shared.runtime.health import HealthServer, HealthState
from shared.runtime.metrics import RuntimeMetrics, observe_many
from shared.runtime.offsets import DeliveryUnit
from shared.runtime.records import Pending, RecordBuilder
from shared.runtime.restore import ensure_topics, restore_partitions, topic_partitions
from shared.runtime.scorer import LoadContext, Scorer, ScoreResult
from shared.runtime.scoring import score_batch
from shared.runtime.state import StateStore
from shared.settings import ServiceSettings

logger = logging.getLogger(__name__)

IDLE_POLL_S = 0.1
SHUTDOWN_GRACE_S = 5.0
"""Time past the drain deadline before the watchdog ends the process."""
EXIT_DRAIN_TIMEOUT = 70
"""Exit status when the drain could not finish within its deadline."""


def _exit_after(seconds: float) -> None:
    time.sleep(seconds)
    logger.error("drain did not finish within %.0fs of SIGTERM; exiting without a clean close", seconds)
    logging.shutdown()
    os._exit(EXIT_DRAIN_TIMEOUT)
_DENIED = frozenset({
    KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._AUTHENTICATION,
})
"""Errors that no retry fixes: the service is not allowed in (wrong credentials or missing ACLs)."""


class ServiceApp:
    """Runs one scorer against Kafka. Construction does no I/O; :meth:`run` does everything."""

    def __init__(self, settings: ServiceSettings, scorer: Scorer[Any], metrics: RuntimeMetrics | None = None) -> None:
        self.settings = settings
        self.scorer = scorer
        self.metrics = metrics or RuntimeMetrics(settings.service_name)
        self.health = HealthState()
        self.state = StateStore(settings.runtime.max_state_keys_per_partition) if scorer.stateful else None
        rt = settings.runtime
        self._batcher: Batcher[Pending] = Batcher(
            rt.max_batch_size, rt.max_wait_ms, rt.latency_budget_ms, rt.inference_estimate_ms
        )
        self._dead: list[DeadLetterRecord] = []
        self._assigned: set[int] = set()
        self._lag_partitions: set[int] = set()
        self._pause_reasons: set[str] = set()
        self._produce_backoff_s = 0.0
        self._produce_retry_at = 0.0
        self._fatal: KafkaError | None = None
        """A fatal client error (e.g. a fenced static member): the clients are unusable."""
        self._stop = threading.Event()
        self._stop_requested_at: float | None = None
        self._watchdog_armed = False
        self._server: HealthServer | None = None
        self._consumer: Consumer | None = None
        self._delivery: Delivery | None = None
        # children bound once: labels() lookups per event were a visible cost on the hot path
        service, topic = settings.service_name, settings.input_topic
        self._consumed_total = self.metrics.consumed.labels(service, topic)
        self._scored_total = self.metrics.scored.labels(service, topic)
        self._e2e = self.metrics.end_to_end.labels(service)
        for reason in DECODE_REASONS:  # series exist from the start, so rate() sees a first burst
            self.metrics.dead_lettered.labels(service, topic, reason)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def metrics_port(self) -> int:
        return self._server.port if self._server else self.settings.metrics.port

    def stop(self) -> None:
        """Ask the loop to drain and exit (thread-safe; also what SIGTERM does)."""
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
        self._stop.set()

    def run(self) -> None:
        self._install_signal_handlers()
        self._server = HealthServer(
            self.settings.metrics.host, self.settings.metrics.port, self.metrics.registry, self.health
        )
        self._server.start()
        try:
            self._load()
            self._consumer, self._delivery = self._connect()
            self._loop()
            self._drain()
        except BaseException:
            self._arm_watchdog()  # failing anyway: librdkafka's close must not hold the process
            raise
        finally:
            self._close()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._stop_from_signal())

    def _stop_from_signal(self) -> None:
        """SIGTERM/SIGINT: drain, but never outlive the deadline.

        librdkafka's synchronous commit and close can block for minutes while every broker is
        down; the orchestrator would then SIGKILL us anyway, so exit on our own, loudly.
        """
        first = self._stop_requested_at is None
        self.stop()
        if first:
            self._arm_watchdog()

    def _arm_watchdog(self) -> None:
        """In a service process (main thread), exit at the latest this long after now."""
        if threading.current_thread() is threading.main_thread() and not self._watchdog_armed:
            self._watchdog_armed = True
            grace = self.settings.runtime.shutdown_deadline_s + SHUTDOWN_GRACE_S
            threading.Thread(target=_exit_after, args=(grace,), name="shutdown-watchdog", daemon=True).start()

    def _load(self) -> None:
        s = self.settings
        use_process_metrics(self.metrics)
        self.scorer.load(LoadContext(settings=s, state=self.state))
        info = self.scorer.model_info
        self.metrics.model_info.labels(s.service_name, info.name, info.version, info.sha256[:12], info.provider).set(1)
        self.health.model_loaded = True
        if s.runtime.create_topics:
            self._ensure_topics()
        logger.info(
            "service=%s model=%s version=%s provider=%s", s.service_name, info.name, info.version, info.provider
        )

    def _ensure_topics(self) -> None:
        s = self.settings
        partitions = topic_partitions(s.kafka, s.input_topic) or s.runtime.default_partitions
        specs: dict[str, tuple[int, dict[str, str]]] = {
            s.input_topic: (partitions, {}),
            s.output_topic: (partitions, {}),
            s.resolved_dlq_topic: (partitions, {}),
        }
        specs.update({topic: (partitions, {}) for topic in self.scorer.extra_output_topics()})
        if self.state is not None:
            specs[s.resolved_changelog_topic] = (partitions, {"cleanup.policy": "compact"})
        ensure_topics(s.kafka, specs)

    def _connect(self) -> tuple[Consumer, Delivery]:
        s, rt = self.settings, self.settings.runtime
        client_id = f"{s.service_name}-{socket.gethostname()}"
        consumer_overrides: dict[str, Any] = {
            "session.timeout.ms": rt.session_timeout_ms,
            "statistics.interval.ms": rt.statistics_interval_ms,
        }
        if s.instance_id:
            # static membership: a restarted replica takes its partitions straight back
            consumer_overrides["group.instance.id"] = s.instance_id
        consumer = make_consumer(
            s.kafka,
            client_id,
            s.resolved_group_id,
            overrides=consumer_overrides,
            on_error=self._on_kafka_error,
            on_stats=self._on_stats,
        )
        producer_overrides: dict[str, Any] = {"queue.buffering.max.messages": rt.max_inflight_messages * 2}
        delivery: Delivery
        if rt.delivery == "exactly_once":
            instance = s.instance_id or socket.gethostname()
            producer_overrides |= {"transactional.id": f"{s.resolved_group_id}.{instance}",
                                   "transaction.timeout.ms": rt.transaction_timeout_ms}
            producer = make_producer(s.kafka, client_id, producer_overrides, on_error=self._on_kafka_error)
            eos = ExactlyOnce(producer, s.input_topic, self._on_unit_done, timeout_s=30.0)
            eos.start()
            delivery = eos
        else:
            producer = make_producer(s.kafka, client_id, producer_overrides, on_error=self._on_kafka_error)
            delivery = AtLeastOnce(producer, s.input_topic, self._on_unit_done, rt.commit_interval_ms)
        self._decoder = RecordDecoder(self.scorer, s.service_name, rt.max_message_bytes, rt.dlq_message_max_chars)
        self._builder = RecordBuilder(self._decoder, s.output_topic, s.resolved_dlq_topic, s.resolved_changelog_topic)
        consumer.subscribe([s.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                           on_lost=self._on_lost)
        return consumer, delivery

    # -- the loop --------------------------------------------------------------------------

    def _loop(self) -> None:
        assert self._consumer is not None and self._delivery is not None
        consumer, delivery = self._consumer, self._delivery
        while not self._stop.is_set():
            if self._fatal is not None:
                # crash-only: nothing committed past what was published; a restart (the
                # orchestrator's) gets fresh clients and resumes from the committed offsets
                raise KafkaException(self._fatal)
            self.health.last_loop_at = time.monotonic()
            self._apply_rewinds()
            self._maybe_retry_producing()
            self._apply_backpressure()
            timeout = min(self._batcher.seconds_until_due(), IDLE_POLL_S)
            room = max(self._batcher.room, 1)
            messages = consumer.consume(num_messages=min(room, 1000), timeout=timeout)
            for msg in messages:
                self._accept(cast(MessageLike, msg))
            self._consumed_total.inc(len(messages))
            if self._batcher.is_due() or self._dead:
                self._process(self._batcher.take())
            delivery.producer.poll(0)
            delivery.maybe_commit(consumer)
            self.scorer.between_batches()
            self._update_gauges()

    def _accept(self, msg: MessageLike) -> None:
        err = msg.error()
        if err is not None:
            if is_fatal(err):
                self._on_fatal(err)
            elif err.code() in _DENIED:
                self._on_denied(err)
            elif err.code() != KafkaError._PARTITION_EOF:
                self.metrics.errors.labels(self.settings.service_name, "kafka").inc()
                logger.warning("consume error: %s", err)
            return
        decoded = self._decoder.decode(msg)
        if isinstance(decoded, DeadLetterRecord):
            self._dead.append(decoded)
        else:
            self._batcher.add(Pending(decoded, msg, time.monotonic()), decoded.timestamp_ms)

    def _process(self, batch: list[Pending]) -> None:
        assert self._consumer is not None and self._delivery is not None
        dead, self._dead = self._dead, []
        records: list[OutRecord] = []
        if batch:
            results = self._score_with_retry(batch)
            if results is None:  # stopping while the scorer fails: leave offsets uncommitted
                return
            kept = [(p, r) for p, r in zip(batch, results, strict=True) if p.event.partition in self._assigned]
            batch, results = [p for p, _ in kept], [r for _, r in kept]
            scored, rejected = self._builder.scored(
                batch, results, self.scorer.model_info, self.scorer.schema_version
            )
            records.extend(scored)
            dead.extend(rejected)
            for topic, count in Counter(record.topic for record in scored).items():
                self.metrics.outputs.labels(self.settings.service_name, topic).inc(count)
        dead = [d for d in dead if d.partition in self._assigned]
        records.extend(self._builder.dead_letters(dead))
        if self.state is not None:
            records.extend(self._builder.changelog(self.state.drain_changes()))
        for letter in dead:
            self.metrics.dead_lettered.labels(
                self.settings.service_name, self.settings.input_topic, letter.reason
            ).inc()
        offsets: dict[int, list[int]] = defaultdict(list)
        for pending in batch:
            offsets[pending.event.partition].append(pending.event.offset)
        for letter in dead:
            offsets[letter.partition].append(letter.offset)
        if not offsets:
            return
        unit = self._delivery.tracker.open_unit(dict(offsets), [p.event.timestamp_ms for p in batch])
        self._delivery.publish(unit, records, self._consumer)

    def _score_with_retry(self, batch: list[Pending]) -> Sequence[ScoreResult] | None:
        service = self.settings.service_name
        rt = self.settings.runtime
        backoff = rt.retry_initial_backoff_s
        events = [p.event for p in batch]
        self.metrics.queue_wait.labels(service).observe(time.monotonic() - batch[0].arrived_at)
        while True:
            started = time.perf_counter()
            try:
                results = score_batch(self.scorer, events, self.state)
            except Exception as exc:
                self._on_scoring_failure(batch, exc, backoff)
                if self._wait_for_retry(backoff):
                    return None
                backoff = min(backoff * 2, rt.retry_max_backoff_s)
                continue
            elapsed = time.perf_counter() - started
            self._on_scoring_success(len(events), elapsed)
            self._record_business(results)
            return results

    def _record_business(self, results: Sequence[ScoreResult]) -> None:
        try:
            self.scorer.record_business_metrics(self.settings.service_name, results, self.metrics.business)
        except Exception:  # a dashboard metric must never stop scoring
            logger.exception("recording business metrics failed")

    def _on_scoring_failure(self, batch: list[Pending], exc: Exception, backoff: float) -> None:
        first = batch[0].event
        logger.error(
            "scoring failed for %d events (first partition=\"%s[%d]\" offset=%d), retrying in %.1fs: %r",
            len(batch), first.topic, first.partition, first.offset, backoff, exc,
        )
        self.metrics.errors.labels(self.settings.service_name, "scoring").inc()
        self.health.failing = True
        self.health.reason = f"scorer failing: {type(exc).__name__}"
        self._pause("failing")

    def _on_scoring_success(self, size: int, elapsed: float) -> None:
        service = self.settings.service_name
        self._batcher.observe_inference(elapsed * 1000)
        self.metrics.batch_size.labels(service).observe(size)
        self.metrics.inference.labels(service, self.scorer.model_info.version).observe(elapsed)
        if self.health.failing:
            logger.info("scorer recovered; resuming consumption")
            self.health.failing = False
            self.health.reason = "ready"
            self._resume("failing")

    def _wait_for_retry(self, backoff: float) -> bool:
        """Serve the consumer and producer while backing off; True if asked to stop."""
        assert self._consumer is not None and self._delivery is not None
        deadline = time.monotonic() + backoff
        while time.monotonic() < deadline:
            if self._stop.is_set():
                return True
            self.health.last_loop_at = time.monotonic()
            messages = self._consumer.consume(num_messages=100, timeout=0.05)
            for msg in messages:
                self._accept(cast(MessageLike, msg))  # fetched before the pause took effect: kept
            self._consumed_total.inc(len(messages))
            self._delivery.producer.poll(0)
            self._delivery.maybe_commit(self._consumer)
        return False

    # -- delivery, backpressure and rewinds ------------------------------------------------

    def _on_unit_done(self, unit: DeliveryUnit) -> None:
        service = self.settings.service_name
        if unit.failed:
            self.metrics.errors.labels(service, "produce").inc()
            self.health.reason = "produce failing"
            self._back_off_producing()
            return
        self._produce_backoff_s = 0.0
        if self.health.denied is not None or self.health.brokers_down:
            # a unit went through, so Kafka lets us in again (ACLs granted, brokers back)
            logger.info("kafka accepts this service's writes again")
            self.health.denied, self.health.brokers_down = None, False
        now_ms = time.time() * 1000
        observe_many(self._e2e, [max(now_ms - event_ms, 0.0) / 1000 for event_ms in unit.event_times_ms])
        self._scored_total.inc(len(unit.event_times_ms))

    def _apply_rewinds(self) -> None:
        """Seek partitions back after a failed delivery or an aborted transaction."""
        assert self._consumer is not None and self._delivery is not None
        rewind, self._delivery.rewind = self._delivery.rewind, {}
        rewind = {p: o for p, o in rewind.items() if p in self._assigned}
        if not rewind:
            return
        logger.warning("rewinding partitions %s to score them again", rewind)
        self._batcher.drop(lambda p: p.event.partition not in rewind)
        self._dead = [d for d in self._dead if d.partition not in rewind]
        if isinstance(self._delivery, ExactlyOnce) and self.state is not None:
            aborted = self._delivery.aborted & set(rewind)
            self._delivery.aborted -= aborted
            self.state.drop_partitions(aborted)
            restore_partitions(self.settings.kafka, self.settings.resolved_changelog_topic, aborted, self.state)
        for partition, offset in rewind.items():
            self._consumer.seek(TopicPartition(self.settings.input_topic, partition, offset))

    def _back_off_producing(self) -> None:
        """Pause after a failed unit so an unwritable output is retried with back-off, not in a spin."""
        rt = self.settings.runtime
        self._produce_backoff_s = min(max(self._produce_backoff_s * 2, rt.retry_initial_backoff_s),
                                      rt.retry_max_backoff_s)
        self._produce_retry_at = time.monotonic() + self._produce_backoff_s
        self._pause("produce")

    def _maybe_retry_producing(self) -> None:
        if "produce" in self._pause_reasons and time.monotonic() >= self._produce_retry_at:
            self._resume("produce")

    def _apply_backpressure(self) -> None:
        assert self._delivery is not None
        limit = self.settings.runtime.max_inflight_messages
        inflight = max(self._delivery.inflight(), self._delivery.tracker.pending_records())
        if inflight > limit:
            self._pause("backpressure")
        elif inflight < limit // 2 and "backpressure" in self._pause_reasons:
            self._resume("backpressure")

    def _pause(self, reason: str) -> None:
        assert self._consumer is not None
        if not self._pause_reasons:
            self._consumer.pause(self._consumer.assignment())
            self.metrics.paused.labels(self.settings.service_name).set(1)
            logger.info("consumption paused (%s)", reason)
        self._pause_reasons.add(reason)

    def _resume(self, reason: str) -> None:
        assert self._consumer is not None
        self._pause_reasons.discard(reason)
        if not self._pause_reasons:
            self._consumer.resume(self._consumer.assignment())
            self.metrics.paused.labels(self.settings.service_name).set(0)
            logger.info("consumption resumed")

    # -- rebalances ------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions if tp.topic == self.settings.input_topic]
        self.metrics.rebalances.labels(self.settings.service_name, "assign").inc()
        if self.state is not None and numbers:
            restore_partitions(self.settings.kafka, self.settings.resolved_changelog_topic, numbers, self.state)
        self._assigned.update(numbers)
        self.scorer.on_assign(numbers)
        self.health.joined = True
        if not self.health.failing:
            self.health.reason = "ready"
        logger.info("assigned partitions %s (now %s)", numbers, sorted(self._assigned))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._release(partitions, commit=True)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._release(partitions, commit=False)

    def _release(self, partitions: list[TopicPartition], commit: bool) -> None:
        """Commit what is done for leaving partitions, then drop their in-flight work and state."""
        assert self._consumer is not None and self._delivery is not None
        numbers = {tp.partition for tp in partitions if tp.topic == self.settings.input_topic}
        self.metrics.rebalances.labels(self.settings.service_name, "revoke" if commit else "lost").inc()
        dropped = self._batcher.drop(lambda p: p.event.partition not in numbers)
        self._dead = [d for d in self._dead if d.partition not in numbers]
        if commit:
            self._delivery.producer.flush(self.settings.runtime.revoke_flush_timeout_s)
            self._delivery.maybe_commit(self._consumer, force=True, partitions=numbers)
        self._delivery.tracker.forget_partitions(numbers)
        self.scorer.on_revoke(sorted(numbers))
        if self.state is not None:
            self.state.drop_partitions(numbers)
        self._assigned -= numbers
        for partition in numbers & self._lag_partitions:
            self.metrics.lag.remove(self.settings.service_name, self.settings.input_topic, str(partition))
        self._lag_partitions -= numbers
        logger.info("released partitions %s (dropped %d unscored events, committed=%s)",
                    sorted(numbers), dropped, commit)

    # -- callbacks, gauges and shutdown ----------------------------------------------------

    def _on_kafka_error(self, err: KafkaError) -> None:
        self.metrics.errors.labels(self.settings.service_name, "kafka").inc()
        level = logging.ERROR if is_fatal(err) else logging.WARNING
        logger.log(level, "kafka error: %s", err.str())
        if is_fatal(err):
            self._on_fatal(err)
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            # not ready until a broker is UP again (see _on_stats): nothing can flow meanwhile
            self.health.brokers_down = True
            self.health.reason = "all brokers down"
        elif err.code() in _DENIED:
            self._on_denied(err)

    def _on_fatal(self, err: KafkaError) -> None:
        logger.error("fatal kafka client error, exiting for a restart: %s", err.str())
        self._fatal = self._fatal or err
        self.health.failing = True
        self.health.reason = f"fatal kafka error: {err.name()}"

    def _on_denied(self, err: KafkaError) -> None:
        """Kafka refused this service (ACLs or credentials): say so loudly and stop reporting ready."""
        if self.health.denied is None:
            logger.error("kafka refused this service (%s): %s — check its credentials and ACLs for topic %s, "
                         "group %s", err.name(), err.str(), self.settings.input_topic, self.settings.resolved_group_id)
        self.health.denied = err.name()
        self.health.reason = f"denied by kafka: {err.name()}"

    def _on_stats(self, stats: dict[str, Any]) -> None:
        service, topic = self.settings.service_name, self.settings.input_topic
        if self.health.brokers_down and any(
            b.get("nodeid", -1) >= 0 and b.get("state") == "UP" for b in stats.get("brokers", {}).values()
        ):
            logger.info("a Kafka broker is reachable again")
            self.health.brokers_down = False
            self.health.reason = "ready"
        for partition, lag in partition_lags(stats, topic).items():
            if partition in self._assigned:
                self.metrics.lag.labels(service, topic, str(partition)).set(lag)
                self._lag_partitions.add(partition)

    def _update_gauges(self) -> None:
        assert self._delivery is not None
        service = self.settings.service_name
        self.metrics.inflight.labels(service).set(self._delivery.inflight())
        self.metrics.ready.labels(service).set(1 if self.health.ready() else 0)
        if self.state is not None:
            self.metrics.state_entries.labels(service).set(len(self.state))

    def _drain(self) -> None:
        """Finish the in-flight batch, flush, commit; bounded by the shutdown deadline."""
        if self._consumer is None or self._delivery is None:
            return
        deadline = (self._stop_requested_at or time.monotonic()) + self.settings.runtime.shutdown_deadline_s
        logger.info("draining: %d buffered events", len(self._batcher))
        if not self.health.failing and (len(self._batcher) or self._dead):
            self._process(self._batcher.take())
        remaining = self._delivery.producer.flush(max(deadline - time.monotonic(), 0.1))
        self._delivery.maybe_commit(self._consumer, force=True)
        logger.info("drained (%d records still unacknowledged)", remaining)

    def _close(self) -> None:
        self.health.model_loaded = False
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self.scorer.close()
        if self._server is not None:
            self._server.stop()

