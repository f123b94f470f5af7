"""A stand-in for ``confluent_kafka.Message``, which cannot be constructed from Python."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class StubMessage:
    _value: bytes | None
    _key: bytes | None = b"k"
    _topic: str = "in"
    _partition: int = 0
    _offset: int = 0
    _timestamp_ms: int = 1_700_000_000_000
    _headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    _error: Any = None
    """A ``confluent_kafka.KafkaError`` for an error event instead of a record."""

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes | None]]:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp_ms)

    def error(self) -> Any:
        return self._error
