"""Turn raw Kafka records into validated :class:`Event` objects, or dead letters.

Everything that can be wrong with a record is checked here, cheaply first: size before
parsing, JSON and the schema next (invalid UTF-8 is named as such when parsing fails), and the
key last. A bad record becomes a
:class:`DeadLetterRecord` (data, not an exception) so the records around it keep flowing.

:meth:`RecordDecoder.decode_many` validates what one poll brought in a single pydantic-core call
(each record parsed on its own, so one record's bytes can never spill into another's); only the
records that call refuses go through :meth:`RecordDecoder.decode` one by one, which names their
reason exactly as before.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from pydantic import BaseModel, Field, Json, TypeAdapter

from shared.errors import InvalidEvent
from shared.kafka.message import MessageLike
from shared.runtime.scorer import Event, Scorer
from shared.schemas import headers as h
from shared.schemas.base import decode

DLQ_MAX_RECORD_BYTES = 900_000
"""A dead letter whose key + value is larger than this could not be published (librdkafka's and
the broker's default ``message.max.bytes`` is about 1 MB, headers included); failing to publish
it would stop the service on the same record after every restart. Such a dead letter keeps
only the first :data:`OVERSIZED_KEEP_BYTES` of its key and value (a compression bomb, say);
smaller ones keep every byte, so they can be redriven after the limit is raised."""
OVERSIZED_KEEP_BYTES = 1024


DECODE_REASONS = (
    "malformed_json", "unknown_field", "missing_field", "non_finite_number", "invalid_value", "invalid_utf8",
    "oversized", "missing_value", "missing_key", "invalid_key", "key_mismatch",
)
"""Every reason this module (and the schema decoder) gives a dead letter; scorers may add their own."""


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A record bound for ``<topic>.dlq``, with the reason it was refused."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]
    reason: str
    partition: int
    offset: int


def _nests_models(schema: type[BaseModel]) -> bool:
    """Whether any field of ``schema`` holds a model (or a container of them)."""
    def holds_model(annotation: Any) -> bool:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return True
        return any(holds_model(arg) for arg in get_args(annotation))

    return any(holds_model(field.annotation) for field in schema.model_fields.values())


class RecordDecoder:
    """Validates records against a scorer's input schema and key rules."""

    def __init__(self, scorer: Scorer[Any], service: str, max_bytes: int, max_message_chars: int) -> None:
        self._scorer = scorer
        self._schema = scorer.input_schema
        self._service = service
        self._max_bytes = max_bytes
        self._max_chars = max_message_chars
        self._batch: TypeAdapter[list[Any]] | None = None
        if not _nests_models(self._schema):
            # Json[...] parses each record on its own and then validates it in Python mode, which
            # for a flat schema beats one validate_json call per record (fraud 4.6 -> 3.9 us) but
            # for nested models costs more (ad_ctr's candidates, when they were models: 20 -> 34
            # us), so a schema that nests models keeps one validate_json call per record.
            self._batch = TypeAdapter(
                list[Annotated[Json[self._schema] | Any, Field(union_mode="left_to_right")]]  # type: ignore[name-defined]
            )

    def decode_many(self, messages: Sequence[MessageLike]) -> list[Event[BaseModel] | DeadLetterRecord]:
        """:meth:`decode` for each message, in order, with the schema checked for all at once."""
        if self._batch is None:
            return [self.decode(msg) for msg in messages]
        values = [self._fits(msg) for msg in messages]
        # A record the schema refuses comes back as its bytes (the union's fallback), not as an
        # exception that would throw away the whole batch's work.
        checked = self._batch.validate_python(values)
        decoded: list[Event[BaseModel] | DeadLetterRecord] = []
        for msg, value in zip(messages, checked, strict=True):
            decoded.append(self._event(msg, value) if isinstance(value, self._schema) else self.decode(msg))
        return decoded

    def _fits(self, msg: MessageLike) -> bytes | None:
        """The value, if it is worth a place in the batched validation (else :meth:`decode` says why:
        an oversized record must be refused before anything parses it)."""
        raw = msg.value()
        if raw is None:
            return None
        raw_key = msg.key()
        return raw if len(raw) + (len(raw_key) if raw_key else 0) <= self._max_bytes else None

    def _event(self, msg: MessageLike, value: BaseModel) -> Event[BaseModel] | DeadLetterRecord:
        try:
            key = self._key(msg.key(), value)
        except InvalidEvent as exc:
            return self.dead_letter(msg, "InvalidEvent", exc.reason, exc.detail)
        _, timestamp_ms = msg.timestamp()
        return Event(
            value=value,
            key=key,
            topic=msg.topic() or "",
            partition=msg.partition() or 0,
            offset=msg.offset() or 0,
            timestamp_ms=timestamp_ms if timestamp_ms > 0 else int(time.time() * 1000),
        )

    def decode(self, msg: MessageLike) -> Event[BaseModel] | DeadLetterRecord:
        try:
            value = self._validated_value(msg.value(), msg.key())
        except InvalidEvent as exc:
            return self.dead_letter(msg, "InvalidEvent", exc.reason, exc.detail)
        return self._event(msg, value)

    def _validated_value(self, raw: bytes | None, raw_key: bytes | None) -> BaseModel:
        if raw is None:
            raise InvalidEvent("missing_value", "the record has no value (tombstone)")
        size = len(raw) + (len(raw_key) if raw_key else 0)
        if size > self._max_bytes:
            raise InvalidEvent("oversized", f"key + value of {size} bytes exceeds the limit of {self._max_bytes}")
        try:
            # pydantic parses the bytes as they are (its JSON parser refuses invalid UTF-8), so a
            # good record is not copied into a str first; a refused one is checked for UTF-8 here
            # to name that reason, as the more fundamental one.
            return decode(self._schema, raw)
        except InvalidEvent:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidEvent("invalid_utf8", f"byte {exc.start}: {exc.reason}") from exc
            raise

    def _key(self, raw_key: bytes | None, value: BaseModel) -> str:
        entity_key = self._scorer.key_of(value)
        if raw_key is None:
            if entity_key is None:
                raise InvalidEvent("missing_key", "the record has no key and the event names no entity")
            raise InvalidEvent("missing_key", f"the record has no key; expected {entity_key!r}")
        try:
            key = raw_key.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidEvent("invalid_key", f"the key is not UTF-8 (byte {exc.start})") from exc
        if entity_key is not None and key != entity_key:
            # A mismatched key means the record sits in the wrong partition, so its state would
            # be kept by the wrong owner: refuse it rather than score it silently.
            raise InvalidEvent("key_mismatch", f"record key {key!r} differs from the event's {entity_key!r}")
        return key

    def dead_letter(self, msg: MessageLike, error_class: str, reason: str, detail: str) -> DeadLetterRecord:
        headers: list[tuple[str, str | bytes | None]] = [
            (h.ERROR_CLASS, error_class.encode()),
            (h.ERROR_REASON, reason.encode()),
            (h.ERROR_MESSAGE, detail[: self._max_chars].encode("utf-8", errors="replace")),
            (h.SOURCE_TOPIC, (msg.topic() or "").encode()),
            (h.SOURCE_PARTITION, str(msg.partition()).encode()),
            (h.SOURCE_OFFSET, str(msg.offset()).encode()),
            (h.SERVICE, self._service.encode()),
            (h.FAILED_AT, str(int(time.time() * 1000)).encode()),
        ]
        key, value = msg.key(), msg.value()
        if len(key or b"") + len(value or b"") > DLQ_MAX_RECORD_BYTES:
            key = key[:OVERSIZED_KEEP_BYTES] if key is not None else None
            value = value[:OVERSIZED_KEEP_BYTES] if value is not None else None
        return DeadLetterRecord(
            key=key,
            value=value,
            headers=headers,
            reason=reason,
            partition=msg.partition() or 0,
            offset=msg.offset() or 0,
        )
