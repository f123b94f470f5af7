"""A read-side view of one dead-lettered record, for ``shopstream dlq inspect|redrive``."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas import headers as h

logger = logging.getLogger(__name__)

HeaderList = Sequence[tuple[str, bytes | str | None]]
"""confluent-kafka's ``Message.headers()`` shape."""


def _text(value: bytes | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", errors="replace")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class DeadLetter(BaseModel):
    """What went wrong, where the record came from, and the raw record itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_class: str | None = None
    error_reason: str | None = None
    error_message: str | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    service: str | None = None
    failed_at_ms: int | None = None
    key: str | None = None
    value: str = Field(description="the raw record, decoded as UTF-8 with replacement")

    @classmethod
    def from_record(cls, headers: HeaderList | None, key: bytes | None, value: bytes | None) -> DeadLetter:
        """Build the view from a DLQ record's headers, key and value; missing headers stay ``None``."""
        hd = {name: _text(v) for name, v in (headers or ())}
        return cls(
            error_class=hd.get(h.ERROR_CLASS),
            error_reason=hd.get(h.ERROR_REASON),
            error_message=hd.get(h.ERROR_MESSAGE),
            source_topic=hd.get(h.SOURCE_TOPIC),
            source_partition=_int(hd.get(h.SOURCE_PARTITION)),
            source_offset=_int(hd.get(h.SOURCE_OFFSET)),
            service=hd.get(h.SERVICE),
            failed_at_ms=_int(hd.get(h.FAILED_AT)),
            key=_text(key),
            value=_text(value) or "",
        )
