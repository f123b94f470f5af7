"""Turn a scored batch into the records to publish: scores with lineage, dead letters, state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from pydantic import BaseModel

from shared.errors import ScoringError
from shared.kafka.message import MessageLike
from shared.runtime.codec import DeadLetterRecord, RecordDecoder
from shared.runtime.delivery import OutRecord
from shared.runtime.scorer import Event, ModelInfo, Rejected, ScoreResult
from shared.runtime.state import StateChange
from shared.schemas import headers as h


class Pending(NamedTuple):
    """A validated event waiting in the micro-batch, with its raw record for dead-lettering."""

    event: Event[BaseModel]
    message: MessageLike
    arrived_at: float
    """``time.monotonic()`` when the record was polled (queue-wait metric)."""


Headers = list[tuple[str, str | bytes | None]]


def model_headers(model: ModelInfo, schema_version: str, topic: str) -> Headers:
    """The lineage headers every score of a batch shares (built once per batch)."""
    return [
        (h.MODEL_NAME, model.name.encode()),
        (h.MODEL_VERSION, model.version.encode()),
        (h.MODEL_SHA256, model.sha256.encode()),
        (h.SCHEMA_VERSION, schema_version.encode()),
        (h.SOURCE_TOPIC, topic.encode()),
    ]


MODEL_HEADERS = (h.MODEL_NAME, h.MODEL_VERSION, h.MODEL_SHA256)


def relabel(headers: Headers, model: ModelInfo) -> Headers:
    """``headers`` naming ``model`` instead: a candidate's output in a batch the live version scored."""
    named = [(h.MODEL_NAME, model.name.encode()), (h.MODEL_VERSION, model.version.encode()),
             (h.MODEL_SHA256, model.sha256.encode())]
    return [*named, *(pair for pair in headers if pair[0] not in MODEL_HEADERS)]


class FeedbackTap:
    """Copies each main-topic output to the feedback topic as a ``prediction`` record.

    The live-quality monitor joins these copies with the shop's outcomes
    (:mod:`shared.schemas.feedback`). The output's JSON is wrapped as bytes, not parsed: the copy
    costs one more produced record per event and no encoding.
    """

    def __init__(self, topic: str, service: str) -> None:
        self.topic = topic
        self._head = b'{"kind":"prediction","service":"' + service.encode() + b'","ts_ms":'

    def wrap(self, value: bytes, event_time_ms: int) -> bytes:
        return b"%b%d,\"record\":%b}" % (self._head, event_time_ms, value)


class RecordBuilder:
    def __init__(self, decoder: RecordDecoder, output_topic: str, dlq_topic: str, changelog_topic: str,
                 feedback: FeedbackTap | None = None) -> None:
        self._decoder = decoder
        self._output_topic = output_topic
        self._dlq_topic = dlq_topic
        self._changelog_topic = changelog_topic
        self._feedback = feedback

    def scored(
        self,
        batch: Sequence[Pending],
        results: Sequence[ScoreResult],
        model: ModelInfo,
        schema_version: str,
    ) -> tuple[list[OutRecord], list[DeadLetterRecord]]:
        if len(results) != len(batch):
            raise ScoringError(f"scorer returned {len(results)} results for {len(batch)} events")
        records: list[OutRecord] = []
        rejected: list[DeadLetterRecord] = []
        shared = model_headers(model, schema_version, batch[0].event.topic) if batch else []
        by_partition: dict[int, Headers] = {}  # the batch's constant headers and the partition's, built once
        for pending, result in zip(batch, results, strict=True):
            if isinstance(result, Rejected):
                rejected.append(self._decoder.dead_letter(pending.message, "Rejected", result.reason, result.detail))
                continue
            event = pending.event
            prefix = by_partition.get(event.partition)
            if prefix is None:
                prefix = by_partition[event.partition] = [*shared, (h.SOURCE_PARTITION, b"%d" % event.partition)]
            headers = [*prefix, (h.SOURCE_OFFSET, b"%d" % event.offset), (h.EVENT_TIME_MS, b"%d" % event.timestamp_ms)]
            for output in result.outputs:
                value = output.value
                encoded = value if isinstance(value, bytes) else value.__pydantic_serializer__.to_json(value)
                key = (output.key or event.key).encode()
                lineage = headers if output.model is None else relabel(headers, output.model)
                records.append(OutRecord(topic=output.topic or self._output_topic, key=key, value=encoded,
                                         headers=lineage))
                if self._feedback is not None and output.topic is None:
                    copy = self._feedback.wrap(encoded, event.timestamp_ms)
                    records.append(OutRecord(self._feedback.topic, key, copy, lineage))
        return records, rejected

    def dead_letters(self, letters: Sequence[DeadLetterRecord]) -> list[OutRecord]:
        return [OutRecord(self._dlq_topic, dl.key, dl.value, dl.headers) for dl in letters]

    def changelog(self, changes: Sequence[StateChange]) -> list[OutRecord]:
        return [
            OutRecord(self._changelog_topic, c.key.encode(), c.value, [], partition=c.partition) for c in changes
        ]
