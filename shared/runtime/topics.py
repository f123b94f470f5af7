"""The topics one service reads and writes, with the partitions and config each is created with.

The runtime creates the missing ones at start (``RUNTIME__CREATE_TOPICS``); ``shopstream topics
create`` can build a whole deployment's list from the same function, so the two never disagree.
"""

from __future__ import annotations

from typing import Any

from shared.runtime.scorer import Scorer
from shared.settings import ServiceSettings

TopicSpecs = dict[str, tuple[int, dict[str, str]]]
"""topic → (partitions, topic config)."""
COMPACT = {"cleanup.policy": "compact"}
CHANGELOG = {**COMPACT, "segment.bytes": str(64 * 2**20), "segment.ms": str(10 * 60_000)}
"""Kafka compacts only closed segments, and by default a segment closes at 1 GiB or after 7 days:
until then a restore reads every write of every key. A soak found fraud's changelog at ~250 MB
per partition after 13 minutes (one 1-3 kB record per changed user per batch), and its restore
after a broker restart longer than a minute; smaller, younger segments let the cleaner keep the
changelog near the size of the state itself. Applied when the runtime creates the topic; an
existing topic keeps its config (``kafka-configs --alter`` changes it)."""
CONFIG_TOPIC_PARTITIONS = 1
"""A config topic is small and read whole by every replica: one partition keeps its order."""


def service_topics(settings: ServiceSettings, scorer: Scorer[Any], partitions: int) -> TopicSpecs:
    """Inputs, outputs, DLQ, the changelog of a stateful scorer, the config topic if one is set, and
    for a scorer with rollouts its shadow output and the model-events topic."""
    specs: TopicSpecs = {
        topic: (partitions, {})
        for topic in (settings.input_topic, settings.output_topic, settings.resolved_dlq_topic,
                      *scorer.extra_output_topics(), *([settings.feedback_topic] if settings.feedback_topic else []))
    }
    if scorer.stateful:
        specs[settings.resolved_changelog_topic] = (partitions, dict(CHANGELOG))
    if settings.config_topic:
        specs[settings.config_topic] = (CONFIG_TOPIC_PARTITIONS, dict(COMPACT))
    if scorer.supports_rollout:
        specs[f"{settings.output_topic}.shadow"] = (partitions, {})
        if settings.model_events_topic:
            specs[settings.model_events_topic] = (CONFIG_TOPIC_PARTITIONS, dict(COMPACT))
    for topic in scorer.compacted_output_topics():
        specs[topic] = (CONFIG_TOPIC_PARTITIONS, dict(COMPACT))
    return specs
