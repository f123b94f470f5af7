"""The peer: the same scoring as a Quix Streams application (run in its own virtualenv).

Quix Streams processes one message at a time through a StreamingDataFrame, so the scorer sees
batches of one (ONNX Runtime at batch 1) and its keyed state lives in Quix's own state store
(RocksDB with a changelog topic), the idiomatic place for it. Outputs are exactly the records
the service writes (scores, extra outputs, dead letters), routed to their topics by Quix.

quixstreams 3.28 pins ``confluent-kafka<2.13`` while shopstream uses a newer client, so it runs
from a separate virtualenv (``--peer-python``, see docs/benchmarks.md)::

    python -m tools.bench.peer_quix --service fraud --bootstrap B --topics '{"input_topic": ...}'
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import uuid
from typing import Any

from quixstreams import Application, message_context
from quixstreams.models.serializers import SerializationContext, Serializer

from shared.runtime.delivery import OutRecord
from tools.bench.scoring import RawRecord, ServiceHarness

logger = logging.getLogger(__name__)


BINARY = "__binary_hex__"


class QuixState:
    """The scorer's ``StateStore`` interface over Quix's per-message-key ``State``."""

    def __init__(self) -> None:
        self.state: Any = None

    def get(self, partition: int, key: str) -> dict[str, Any] | None:
        value = self.get_value(partition, key)
        if isinstance(value, bytes):
            raise TypeError(f"state of {key!r} is binary: read it with get_value()")
        return value

    def get_value(self, partition: int, key: str) -> dict[str, Any] | bytes | None:
        value = self.state.get(key)
        if value is None:
            return None
        # Quix serialises state as JSON, so a scorer's binary state (fraud's) travels as hex
        return bytes.fromhex(value[BINARY]) if BINARY in value else dict(value)

    def put(self, partition: int, key: str, value: dict[str, Any] | bytes) -> None:
        self.state.set(key, {BINARY: value.hex()} if isinstance(value, bytes) else value)

    def delete(self, partition: int, key: str) -> None:
        self.state.delete(key)


class RecordValue(Serializer):  # type: ignore[misc]
    """Outputs are already serialised by the scorer's record builder."""

    def __call__(self, value: OutRecord, ctx: SerializationContext) -> bytes | None:
        return value.value


def build_app(bootstrap: str, service: str, topics: dict[str, str], state_dir: str) -> Application:
    app = Application(broker_address=bootstrap, consumer_group=f"quix-{uuid.uuid4().hex}",
                      auto_offset_reset="earliest", state_dir=state_dir, loglevel="WARNING",
                      processing_guarantee="at-least-once")
    store = QuixState()
    harness = ServiceHarness(service, topics, state=store)
    source = app.topic(topics["input_topic"], key_deserializer="bytes", value_deserializer="bytes")
    outputs = {name: app.topic(name, key_serializer="bytes", value_serializer=RecordValue())
               for field, name in topics.items() if field != "input_topic" and name and field != "changelog_topic"}

    def score(value: bytes, key: bytes, timestamp: int, _headers: Any, state: Any) -> list[OutRecord]:
        ctx = message_context()
        store.state = state  # Quix hands each message the state of its key
        return harness.score([RawRecord(ctx.topic, ctx.partition, ctx.offset, key, value, timestamp)])

    sdf = app.dataframe(source)
    if harness.scorer.stateful:
        sdf = sdf.apply(score, stateful=True, metadata=True, expand=True)
    else:
        sdf = sdf.apply(lambda value, key, ts, headers: score(value, key, ts, headers, None), metadata=True,
                        expand=True)
    sdf = sdf.set_headers(lambda record, _key, _ts, _headers: record.headers)
    sdf.to_topic(lambda record, _key, _ts, _headers: outputs[record.topic], key=lambda record: record.key)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, help="the service's topic settings (JSON)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="quix-state-") as state_dir:
        app = build_app(args.bootstrap, args.service, json.loads(args.topics), state_dir)
        print("ready", flush=True)
        app.run()


if __name__ == "__main__":
    main()
