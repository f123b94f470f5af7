"""A replay of a range of a service's input, rescored by a pinned version, to a topic of its own.

The scorer is the one the service builds, loaded pinned to the chosen version with the config
and model-events topics switched off (a replay follows no live rollout, promotion or setting);
:class:`~tools.replay.loop.ReplayLoop` turns the range through it. Guarantees:

* input is read through ``assign()`` in a group of the replay's own; the live group is never
  joined and its offsets never move; the replay commits its progress to its own group;
* a stateful scorer starts from empty state: the live changelog is neither read nor written;
* main outputs go to ``--to-topic``, dead letters to ``<to-topic>.dlq``; records for the
  scorer's extra topics are counted and dropped;
* a request that would write a live topic or commit to the live group, or that names a version
  the repository lacks, is refused (:class:`~shared.errors.ConfigError`) before any Kafka I/O.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.errors import ConfigError, ShopstreamError
from shared.kafka.clients import make_consumer, make_producer
from shared.models.repository import ModelRepository
from shared.runtime.model_scorer import ModelScorer
from shared.runtime.restore import ensure_topics
from shared.runtime.scorer import LoadContext, Scorer
from shared.runtime.state import StateStore
from shared.settings import ServiceSettings
from tools.replay.compare import CompareReport, Comparison
from tools.replay.live import read_live, require_topic
from tools.replay.loop import ReplayLoop
from tools.replay.progress import NoProgress, ReplayProgress
from tools.replay.ranges import ConsumerLookup, Ranges, resolve
from tools.replay.reader import READER_CONFIG, RangeReader
from tools.replay.summary import ReplayRequest, ReplaySummary
from tools.replay.writer import OnOutput, ReplayWriter

__all__ = ["Replay", "ReplayOutcome", "ReplayRequest", "ReplaySummary", "check_request", "check_version",
           "run_replay"]

logger = logging.getLogger(__name__)

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
CreateScorer = Callable[[Any], Scorer[Any]]


def default_group(service: str) -> str:
    return f"shopstream.replay.{service}.{secrets.token_hex(4)}"


def pinned(settings: SettingsT, model_version: str) -> SettingsT:
    """``settings`` serving ``model_version`` only and following no config or model-events topic."""
    return settings.model_copy(update={"model_version": model_version, "config_topic": None,
                                       "model_events_topic": None})


def check_request(settings: ServiceSettings, scorer: Scorer[Any], request: ReplayRequest, group: str) -> None:
    """Refuse a replay that would write to a topic or commit to a group the live service uses."""
    live = {settings.input_topic, settings.output_topic, settings.resolved_dlq_topic,
            settings.resolved_changelog_topic, f"{settings.output_topic}.shadow", *scorer.extra_output_topics(),
            *scorer.compacted_output_topics(), *([settings.feedback_topic] if settings.feedback_topic else [])}
    clash = sorted({request.to_topic, request.dlq_topic} & live)
    if clash:
        raise ConfigError(f"--to-topic would write to {', '.join(clash)}, which the live service uses")
    if group == settings.resolved_group_id:
        raise ConfigError(f"--group {group} is the live service's group; a replay commits to a group of its own")


def check_version(settings: ServiceSettings, scorer: Scorer[Any], version: str) -> None:
    if not isinstance(scorer, ModelScorer):
        raise ConfigError(f"{settings.service_name} serves no model versions, so there is nothing to replay")
    versions = ModelRepository(settings.models_dir).versions(scorer.model_name)
    if version not in versions:
        raise ConfigError(f"model {scorer.model_name} has no version {version} under {settings.models_dir} "
                          f"(it has {', '.join(versions) or 'none'})")


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    summary: ReplaySummary
    report: CompareReport | None = None
    """With ``live_topic``: the replayed outputs beside the live ones."""


def run_replay(settings: ServiceSettings, create_scorer: CreateScorer, request: ReplayRequest, *,
               live_topic: str | None = None, progress: ReplayProgress | None = None) -> ReplayOutcome:
    """Replay ``request`` for the service ``settings`` describe (as ``shopstream serve`` reads them;
    the model pin and the config and model-events topics are overridden here) and, with
    ``live_topic``, compare its outputs with the live ones there."""
    if live_topic is not None:
        require_topic(settings, live_topic)  # before any rescoring
    with Replay(settings, create_scorer, request) as replay:
        if live_topic is None:
            return ReplayOutcome(replay.run(progress))
        comparison = Comparison(replay.scorer.agreement_view, replay.settings.input_topic, replay.ranges)
        summary = replay.run(progress, on_output=lambda r: comparison.add_replayed(r.headers, r.value))
        read_live(replay.settings, live_topic, summary.first_timestamp_ms, comparison, summary.group_id)
        return ReplayOutcome(summary, comparison.report())


class Replay:
    """One replay: :meth:`open` resolves the range and loads the pinned scorer, :meth:`run` replays it.

    The constructor does no Kafka I/O; it refuses a request that would touch the live service's
    topics or group, or name a version the repository lacks (:class:`ConfigError`)."""

    def __init__(self, settings: ServiceSettings, create_scorer: CreateScorer, request: ReplayRequest) -> None:
        self.settings = pinned(settings, request.model_version)
        self.request = request
        self.group_id = request.group_id or default_group(self.settings.service_name)
        self.scorer = create_scorer(self.settings)
        check_request(self.settings, self.scorer, request, self.group_id)
        check_version(self.settings, self.scorer, request.model_version)
        rt = self.settings.runtime
        self.state = StateStore(rt.max_state_keys_per_partition, rt.max_state_bytes_per_partition) \
            if self.scorer.stateful else None
        self.ranges: Ranges = {}
        self._client = f"shopstream-replay-{self.settings.service_name}"
        self._consumer: Any = None

    def __enter__(self) -> Replay:
        try:
            return self.open()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *_: object) -> None:
        self.close()

    def open(self) -> Replay:
        s = self.settings
        self._consumer = make_consumer(s.kafka, self._client, self.group_id, dict(READER_CONFIG))
        lookup = ConsumerLookup(self._consumer)
        self.ranges = resolve(lookup, s.input_topic, self.request.start, self.request.end)
        if s.runtime.create_topics:
            partitions = len(lookup.partitions(s.input_topic))
            ensure_topics(s.kafka, {t: (partitions, {}) for t in (self.request.to_topic, self.request.dlq_topic)})
        self.scorer.load(LoadContext(settings=s, state=self.state))
        if self.scorer.model_info.version != self.request.model_version:  # the pin is the point of a replay
            raise ShopstreamError(f"{s.service_name} loaded {self.scorer.model_info.version}, "
                                  f"not {self.request.model_version}")
        self.scorer.on_assign(sorted(self.ranges))
        return self

    def run(self, progress: ReplayProgress | None = None, on_output: OnOutput | None = None) -> ReplaySummary:
        s, request = self.settings, self.request
        if self._consumer is None:
            raise ShopstreamError("Replay.run() before open()")
        summary = ReplaySummary(s.service_name, request.model_version, s.input_topic, request.to_topic,
                                self.group_id, self.ranges, self.scorer.stateful)
        writer = ReplayWriter(make_producer(s.kafka, self._client), request.to_topic, request.dlq_topic, on_output)
        reader = RangeReader(self._consumer, s.input_topic, self.ranges, s.runtime.max_batch_size)
        ReplayLoop(s, self.scorer, self.state, reader, writer, summary).run(progress or NoProgress())
        return summary

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self.scorer.close()
