"""The types of the factory fixtures in ``tests/conftest.py``, for annotating tests that request them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from tools.broker.kafka import KafkaBroker


class TopicFactory(Protocol):
    def __call__(self, partitions: int = 1, *, config: Mapping[str, str] | None = None,
                 prefix: str = "test") -> str:
        """Create a fresh topic and return its name; it is deleted after the test."""
        ...


class GroupIdFactory(Protocol):
    def __call__(self, prefix: str = "group") -> str:
        """A consumer group id that no other test uses."""
        ...


class BrokerFactory(Protocol):
    def __call__(self, data_dir: Path | None = None, overrides: Mapping[str, str] | None = None) -> KafkaBroker:
        """Start a broker of the test's own (on ``data_dir`` if given, with extra server.properties
        ``overrides``); it is closed after the test."""
        ...
