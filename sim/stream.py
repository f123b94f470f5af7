"""The common shape of every simulated stream: endless chunks of ``(event dict, truth dict)``.

Generators work on numpy columns per chunk and only turn rows into dicts at the end, which
is where the speed comes from. :meth:`SimStream.iter_events` validates each dict into its
pydantic model (slow, for tests and training sets); :meth:`SimStream.iter_json` skips
pydantic and yields JSON bytes for load generation.
"""

from __future__ import annotations

import itertools
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import BaseModel

from sim.world import World

logger = logging.getLogger(__name__)

Row = tuple[dict[str, Any], dict[str, Any]]
"""``(event fields, ground truth)``."""

_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class SimStream(ABC):
    """One simulated input stream of a world."""

    name: ClassVar[str]
    model: ClassVar[type[BaseModel]]
    key_field: ClassVar[str]

    def __init__(self, world: World) -> None:
        self.world = world

    @abstractmethod
    def chunks(self) -> Iterator[list[Row]]:
        """Endless, deterministic chunks of rows in event-time order."""

    def iter_dicts(self, n: int | None = None) -> Iterator[Row]:
        """The first ``n`` rows (all of them, forever, when ``n`` is ``None``)."""
        rows = itertools.chain.from_iterable(self.chunks())
        return rows if n is None else itertools.islice(rows, n)

    def iter_events(self, n: int | None = None) -> Iterator[tuple[BaseModel, dict[str, Any]]]:
        """Validated pydantic events with their ground truth."""
        for event, truth in self.iter_dicts(n):
            yield self.model.model_validate(event), truth

    def iter_json(self, n: int | None = None) -> Iterator[bytes]:
        """Event JSON bytes, no validation: the load generator's fast path."""
        for event, _ in self.iter_dicts(n):
            yield _dumps(event).encode()

    def iter_records(self, n: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` bytes ready for a Kafka producer."""
        key = self.key_field
        for event, _ in self.iter_dicts(n):
            yield str(event[key]).encode(), _dumps(event).encode()

    def record_of(self, event: dict[str, Any]) -> tuple[bytes, bytes]:
        """The ``(key, value)`` bytes :meth:`iter_records` yields for one event dict."""
        return str(event[self.key_field]).encode(), _dumps(event).encode()
