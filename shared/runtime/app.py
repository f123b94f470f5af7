"""The service process: load the scorer, open the clients, turn the loop, drain and close.

A service hands :class:`ServiceApp` its settings and scorer and calls :meth:`ServiceApp.run`.
Guarantees (see ``docs/runtime.md``): input offsets are committed only after every record
derived from them is acknowledged (or inside the same transaction in exactly-once mode); bad
records go to the DLQ and the rest keep flowing; a failing scorer pauses consumption and turns
readiness off instead of dead-lettering good events; SIGTERM drains within a deadline.

This module wires the parts; each concern lives in its own module: the loop (:mod:`.loop`),
scoring and publishing a batch (:mod:`.pipeline`), readiness (:mod:`.health`), pausing
(:mod:`.pause`), rebalances (:mod:`.rebalance`), client errors and delivery outcomes
(:mod:`.events`) and the client factory (:mod:`.factories`).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from shared.kafka.protocols import ConsumerLike, ProducerLike
from shared.runtime.batcher import Batcher
from shared.runtime.codec import DECODE_REASONS, RecordDecoder
from shared.runtime.collector import BatchCollector
from shared.runtime.config import ConfigSource, StaticConfig
from shared.runtime.delivery import AtLeastOnce, Delivery, ExactlyOnce, UnitDone
from shared.runtime.end_offsets import EndOffsets
from shared.runtime.events import ClientEvents, UnitOutcomes
from shared.runtime.factories import (
    BrokerClients,
    ClientFactory,
    ConfigReader,
    client_id,
    consumer_overrides,
    producer_overrides,
)
from shared.runtime.health import HealthServer, HealthState
from shared.runtime.loop import LoopParts, StreamLoop
from shared.runtime.metrics import RuntimeMetrics
from shared.runtime.pause import Backoff, PauseController
from shared.runtime.pipeline import BatchPipeline
from shared.runtime.rebalance import Assignment, Rebalancer
from shared.runtime.records import FeedbackTap, Pending, RecordBuilder
from shared.runtime.retry import SCORER_ERROR
from shared.runtime.scorer import LoadContext, Scorer
from shared.runtime.stalls import StallWatch
from shared.runtime.state import StateStore
from shared.runtime.topics import service_topics
from shared.settings import ServiceSettings

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5.0
"""Time past the drain deadline before the watchdog ends the process."""
EXIT_DRAIN_TIMEOUT = 70
"""Exit status when the drain could not finish within its deadline."""
TRANSACTION_TIMEOUT_S = 30.0


def _exit_after(seconds: float) -> None:
    time.sleep(seconds)
    logger.error("drain did not finish within %.0fs of SIGTERM; exiting without a clean close", seconds)
    logging.shutdown()
    os._exit(EXIT_DRAIN_TIMEOUT)


class ServiceApp:
    """Runs one scorer against Kafka. Construction does no I/O; :meth:`run` does everything.

    ``clients`` opens every Kafka client the service uses (the real ones by default) and ``clock``
    times back-offs and batches' retries; unit tests pass in-memory fakes of both.
    """

    def __init__(self, settings: ServiceSettings, scorer: Scorer[Any], metrics: RuntimeMetrics | None = None,
                 clients: ClientFactory | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self.scorer = scorer
        self.metrics = metrics or RuntimeMetrics(settings.service_name)
        self.clients: ClientFactory = clients or BrokerClients(settings.kafka)
        self.health = HealthState()
        bounds = (settings.runtime.max_state_keys_per_partition, settings.runtime.max_state_bytes_per_partition)
        self.state = StateStore(*bounds) if scorer.stateful else None
        self.assignment = Assignment(self.metrics, settings.input_topic)
        self.stalls = StallWatch(settings.runtime.stall_after_s, clock)
        self.end_offsets = EndOffsets(self.clients.end_offsets, settings.input_topic,
                                      interval_s=min(max(settings.runtime.stall_after_s / 4, 1.0), 15.0))
        self.events = ClientEvents(self.metrics, self.health, self.assignment,
                                   f"topic {settings.input_topic}, group {settings.resolved_group_id}")
        self.loop: StreamLoop | None = None
        self._consumer: ConsumerLike | None = None
        self._delivery: Delivery | None = None
        self._readers: list[ConfigReader] = []
        self._stop = threading.Event()
        self._stop_requested_at: float | None = None
        self._watchdog_armed = False
        self._server: HealthServer | None = None
        for reason in (*DECODE_REASONS, SCORER_ERROR):  # series exist from the start: rate() sees a first burst
            self.metrics.dead_lettered.labels(settings.service_name, settings.input_topic, reason)

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
            loop = self.start()
            # ad_ctr, batch 256: freezing what loading made took scorer CPU per event from 115-123 to
            # 73-75 us; collecting after each batch removes the full collections' pauses as well.
            loop.parts.collector.start()
            while not self._stop.is_set():
                loop.turn()
            loop.drain((self._stop_requested_at or time.monotonic()) + self.settings.runtime.shutdown_deadline_s)
        except BaseException:
            self._arm_watchdog()  # failing anyway: librdkafka's close must not hold the process
            raise
        finally:
            self.close()

    def start(self) -> StreamLoop:
        """Create the topics, follow the config topic, load the scorer, open the clients and
        subscribe; returns the loop, ready to turn (:meth:`run` turns it until stopped)."""
        self._load()
        self.loop = self._connect()
        self.end_offsets.start()
        return self.loop

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
        if s.runtime.create_topics:
            partitions = self.clients.topic_partitions(s.input_topic) or s.runtime.default_partitions
            self.clients.ensure_topics(service_topics(s, self.scorer, partitions))
        config, decisions = self._follow_topics()
        context = LoadContext(settings=s, state=self.state, config=config, model_metrics=self.metrics,
                              model_events=decisions)
        self.scorer.load(context)
        info = self.scorer.model_info
        self.metrics.model_info.labels(s.service_name, info.name, info.version, info.sha256[:12], info.provider).set(1)
        self.health.model_loaded = True
        logger.info(
            "service=%s model=%s version=%s provider=%s", s.service_name, info.name, info.version, info.provider
        )

    def _follow_topics(self) -> tuple[ConfigSource, ConfigSource]:
        """Start reading the config topic and, for a scorer with rollouts, the model-events topic; wait
        (up to ``config_wait_s``, for both together) until they are read to their ends."""
        s = self.settings
        topics = {"config": s.config_topic,
                  "model-events": s.model_events_topic if self.scorer.supports_rollout else None}
        readers: dict[str, ConfigReader] = {}
        for role, topic in topics.items():
            if topic:
                readers[role] = self.clients.config_reader(topic, f"{s.service_name}-{role}")
                readers[role].start()
        self._readers = list(readers.values())
        deadline = time.monotonic() + s.config_wait_s
        for role, reader in readers.items():
            if not reader.wait_caught_up(max(deadline - time.monotonic(), 0.0)):
                logger.warning("%s topic %s not read to its end yet; serving anyway", role, topics[role])
        return readers.get("config", StaticConfig()), readers.get("model-events", StaticConfig())

    def _connect(self) -> StreamLoop:
        s, rt = self.settings, self.settings.runtime
        consumer = self.clients.consumer(client_id(s), s.resolved_group_id, consumer_overrides(s),
                                         self.events.on_error, self.events.on_stats)
        pauses = PauseController(consumer, self.metrics.paused.labels(s.service_name), self._clock)
        outcomes = UnitOutcomes(self.metrics, s.input_topic, self.health, pauses,
                                Backoff(rt.retry_initial_backoff_s, rt.retry_max_backoff_s), self.stalls)
        producer = self.clients.producer(client_id(s), producer_overrides(s), self.events.on_error)
        delivery = self._delivery_for(producer, outcomes.on_unit_done)
        self._consumer, self._delivery = consumer, delivery
        loop = StreamLoop(self._loop_parts(consumer, delivery, pauses))
        rebalancer = Rebalancer(
            scorer=self.scorer, state=self.state, metrics=self.metrics, health=self.health,
            assignment=self.assignment, delivery=delivery, restore=self._restore,
            drop_inflight=loop.drop_partitions, flush_timeout_s=rt.revoke_flush_timeout_s,
        )
        consumer.subscribe([s.input_topic], on_assign=rebalancer.on_assign, on_revoke=rebalancer.on_revoke,
                           on_lost=rebalancer.on_lost)
        return loop

    def _delivery_for(self, producer: ProducerLike, on_unit_done: UnitDone) -> Delivery:
        rt = self.settings.runtime
        if rt.delivery == "exactly_once":
            eos = ExactlyOnce(producer, self.settings.input_topic, on_unit_done, timeout_s=TRANSACTION_TIMEOUT_S,
                              on_waiting=self._commit_waiting)
            eos.start()
            return eos
        return AtLeastOnce(producer, self.settings.input_topic, on_unit_done, rt.commit_interval_ms)

    def _loop_parts(self, consumer: ConsumerLike, delivery: Delivery, pauses: PauseController) -> LoopParts:
        s, rt = self.settings, self.settings.runtime
        decoder = RecordDecoder(self.scorer, s.service_name, rt.max_message_bytes, rt.dlq_message_max_chars)
        feedback = FeedbackTap(s.feedback_topic, s.service_name) if s.feedback_topic else None
        builder = RecordBuilder(decoder, s.output_topic, s.resolved_dlq_topic, s.resolved_changelog_topic, feedback)
        batcher: Batcher[Pending] = Batcher(
            rt.max_batch_size, rt.max_wait_ms, rt.latency_budget_ms, rt.inference_estimate_ms
        )
        return LoopParts(
            scorer=self.scorer, state=self.state, metrics=self.metrics, health=self.health, consumer=consumer,
            delivery=delivery, pipeline=BatchPipeline(self.scorer, self.state, self.metrics, builder, delivery),
            decoder=decoder, batcher=batcher, pauses=pauses, events=self.events, assignment=self.assignment,
            restore=self._restore, scorer_backoff=Backoff(rt.retry_initial_backoff_s, rt.retry_max_backoff_s),
            max_inflight=rt.max_inflight_messages, split_after_failures=rt.split_after_failures,
            poison_after_failures=rt.poison_after_failures, stalls=self.stalls,
            end_offsets=self.end_offsets, clock=self._clock, collector=BatchCollector(rt.gc_full_interval_s),
        )

    def _restore(self, partitions: Iterable[int]) -> None:
        if self.state is not None:
            self.clients.restore(self.settings.resolved_changelog_topic, partitions, self.state,
                                 on_progress=self._restoring)

    def _commit_waiting(self) -> None:
        """A transaction's commit timed out and is tried again: the brokers are away. The loop is
        waiting for them, not wedged, so the liveness probe must not restart it (a fresh process
        could not commit either, and its open transaction would only be aborted); the service is
        not ready meanwhile. A disk-full test caught the probe restarting a service that waited
        here through a broker outage."""
        self.health.produce_failing = True
        self.health.last_loop_at = time.monotonic()

    def _restoring(self) -> None:
        """A restore that reads records is progress, not a wedged loop: the liveness probe must not
        restart the process in the middle of it (the restart would start the restore over)."""
        self.health.last_loop_at = time.monotonic()

    def close(self) -> None:
        """Close the clients, the scorer, the config reader and the HTTP server (idempotent)."""
        self.health.model_loaded = False
        self.end_offsets.close()
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self.scorer.close()
        for reader in self._readers:
            reader.close()
        self._readers = []
        if self._server is not None:
            self._server.stop()
            self._server = None
