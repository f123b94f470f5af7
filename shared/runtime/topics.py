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
CONFIG_TOPIC_PARTITIONS = 1
"""A config topic is small and read whole by every replica: one partition keeps its order."""


def service_topics(settings: ServiceSettings, scorer: Scorer[Any], partitions: int) -> TopicSpecs:
    """Inputs, outputs, DLQ, the changelog of a stateful scorer, and the config topic if one is set."""
    specs: TopicSpecs = {
        topic: (partitions, {})
        for topic in (settings.input_topic, settings.output_topic, settings.resolved_dlq_topic,
                      *scorer.extra_output_topics())
    }
    if scorer.stateful:
        specs[settings.resolved_changelog_topic] = (partitions, dict(COMPACT))
    if settings.config_topic:
        specs[settings.config_topic] = (CONFIG_TOPIC_PARTITIONS, dict(COMPACT))
    return specs
