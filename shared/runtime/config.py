"""Operator settings that change at run time, as a scorer sees them: key → latest JSON object.

The runtime reads the service's compacted config topic (:mod:`shared.kafka.config_topic`) and hands
the scorer a :class:`ConfigSource` in its :class:`~shared.runtime.scorer.LoadContext`; scorers never
open Kafka themselves. Without a config topic, and in unit tests, a :class:`StaticConfig` stands in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

JsonDict = dict[str, Any]


class ConfigSource(Protocol):
    """What a scorer needs from a config topic: the latest value of a key, read per batch."""

    def get(self, key: str) -> JsonDict | None: ...


class StaticConfig:
    """An in-memory :class:`ConfigSource` (tests, or a service run without a config topic)."""

    def __init__(self, values: Mapping[str, JsonDict] | None = None) -> None:
        self.values: dict[str, JsonDict] = dict(values or {})

    def get(self, key: str) -> JsonDict | None:
        return self.values.get(key)
