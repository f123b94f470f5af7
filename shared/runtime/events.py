"""What the Kafka clients and the delivery units report, turned into readiness, pauses and metrics.

:class:`ClientEvents` takes the clients' error and statistics callbacks and the error events that
``consume()`` returns; :class:`UnitOutcomes` takes each settled delivery unit. Both only set
flags on :class:`~shared.runtime.health.HealthState` (the reasons are derived there) and never
touch the consumer except through the :class:`~shared.runtime.pause.PauseController`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from shared.kafka.clients import fetch_positions, is_fatal, partition_lags
from shared.runtime.health import HealthState
from shared.runtime.metrics import RuntimeMetrics, observe_many
from shared.runtime.offsets import DeliveryUnit
from shared.runtime.pause import Backoff, PauseController
from shared.runtime.rebalance import Assignment
from shared.runtime.stalls import StallWatch

logger = logging.getLogger(__name__)

DENIED = frozenset({
    KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._AUTHENTICATION,
})
"""Errors that no retry fixes: the service is not allowed in (wrong credentials or missing ACLs)."""


class ClientEvents:
    """Client errors and statistics → readiness flags, error counts and consumer lag gauges."""

    def __init__(self, metrics: RuntimeMetrics, health: HealthState, assignment: Assignment, where: str) -> None:
        self._metrics = metrics
        self._health = health
        self._assignment = assignment
        self._where = where
        """For the denied message: which topic and group this service needs access to."""
        self.fatal: KafkaError | None = None
        """A fatal client error (e.g. a fenced static member): the clients are unusable."""

    def raise_if_fatal(self) -> None:
        """Crash-only: nothing is committed past what was published, and a restart (the
        orchestrator's) gets fresh clients and resumes from the committed offsets."""
        if self.fatal is not None:
            raise KafkaException(self.fatal)

    def on_error(self, err: KafkaError) -> None:
        """librdkafka's ``error_cb`` (every client of the service)."""
        self._metrics.errors.labels(self._metrics.service, "kafka").inc()
        logger.log(logging.ERROR if is_fatal(err) else logging.WARNING, "kafka error: %s", err.str())
        if is_fatal(err):
            self._on_fatal(err)
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._health.brokers_down = True  # until a broker is UP again (on_stats) or a unit goes through
        elif err.code() in DENIED:
            self._on_denied(err)

    def on_consume_error(self, err: KafkaError) -> None:
        """An error event returned by ``consume()`` instead of a record."""
        if is_fatal(err):
            self._on_fatal(err)
        elif err.code() in DENIED:
            self._on_denied(err)
        elif err.code() != KafkaError._PARTITION_EOF:
            self._metrics.errors.labels(self._metrics.service, "kafka").inc()
            logger.warning("consume error: %s", err)

    def on_stats(self, stats: dict[str, Any]) -> None:
        """librdkafka's ``stats_cb``: broker states and per-partition consumer lag."""
        if self._health.brokers_down and any(
            b.get("nodeid", -1) >= 0 and b.get("state") == "UP" for b in stats.get("brokers", {}).values()
        ):
            logger.info("a Kafka broker is reachable again")
            self._health.brokers_down = False
        self._assignment.report_lags(partition_lags(stats, self._assignment.topic))
        self._assignment.report_positions(fetch_positions(stats, self._assignment.topic))

    def _on_fatal(self, err: KafkaError) -> None:
        logger.error("fatal kafka client error, exiting for a restart: %s", err.str())
        self.fatal = self.fatal or err
        self._health.fatal = self.fatal.name()

    def _on_denied(self, err: KafkaError) -> None:
        """Kafka refused this service (ACLs or credentials): say so loudly and stop reporting ready."""
        if self._health.denied is None:
            logger.error("kafka refused this service (%s): %s — check its credentials and ACLs for %s",
                         err.name(), err.str(), self._where)
        self._health.denied = err.name()


class UnitOutcomes:
    """Each settled delivery unit: a failure backs producing off; a success proves Kafka lets us in."""

    def __init__(self, metrics: RuntimeMetrics, input_topic: str, health: HealthState, pauses: PauseController,
                 backoff: Backoff, stalls: StallWatch) -> None:
        self._metrics = metrics
        self._stalls = stalls
        self._health = health
        self._pauses = pauses
        self._backoff = backoff
        self._scored_total = metrics.scored.labels(metrics.service, input_topic)
        self._e2e = metrics.end_to_end.labels(metrics.service)

    def on_unit_done(self, unit: DeliveryUnit) -> None:
        if unit.failed:
            self._metrics.errors.labels(self._metrics.service, "produce").inc()
            self._health.produce_failing = True
            # pause so an unwritable output is retried with back-off, not in a spin
            self._pauses.pause("produce", for_s=self._backoff.failed())
            return
        self._backoff.reset()
        self._stalls.progressed(unit.last_offsets)
        if self._health.denied is not None or self._health.brokers_down or self._health.produce_failing:
            logger.info("kafka accepts this service's writes again")
            self._health.denied, self._health.brokers_down, self._health.produce_failing = None, False, False
        now_ms = time.time() * 1000
        observe_many(self._e2e, [max(now_ms - event_ms, 0.0) / 1000 for event_ms in unit.event_times_ms])
        self._scored_total.inc(len(unit.event_times_ms))
