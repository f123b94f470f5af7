"""Golden outputs: fixed input records per service → the records the service publishes.

The safety net for rewrites of the hot path (decode → score → encode): the inputs and the outputs
of the code before a rewrite are committed under ``tests/data/golden/``, and
``tests/unit/test_golden_outputs.py`` replays the inputs through today's code and compares.
Recording again is `python -m tests.support.golden <service>...` from the repo root.

The inputs are stored with the outputs (not regenerated from the simulator), so a change to the
simulated shop cannot move them. The replay drives the runtime's own decoder, the batch-scoring
transaction and the record builder, batch by batch, without Kafka. Headers that hold the wall
clock (``x-failed-at``) are left out.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import random
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.registry import load_service
from shared.runtime.codec import DeadLetterRecord, RecordDecoder
from shared.runtime.records import Pending, RecordBuilder
from shared.runtime.scorer import LoadContext, Scorer
from shared.runtime.scoring import score_batch
from shared.runtime.state import StateStore
from shared.schemas import headers as h

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "data" / "golden"
SCENARIO_OF_SERVICE = {
    "recommendation": "clickstream", "ad_ctr": "ads", "pricing": "pricing", "fraud": "payments", "support": "support",
}
PARTITIONS = 4
BATCH_SIZE = 64
CLOCK_HEADERS = frozenset({h.FAILED_AT})


@dataclass(frozen=True, slots=True)
class InputRecord:
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(slots=True)
class GoldenMessage:
    """A consumed record as the decoder sees it (``confluent_kafka.Message`` cannot be built)."""

    record: InputRecord
    topic_name: str

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return self.record.partition

    def offset(self) -> int:
        return self.record.offset

    def key(self) -> bytes | None:
        return self.record.key

    def value(self) -> bytes | None:
        return self.record.value

    def headers(self) -> list[tuple[str, bytes | None]]:
        return []

    def timestamp(self) -> tuple[int, int]:
        return (1, self.record.timestamp_ms)

    def error(self) -> None:
        return None


@dataclass
class GoldenRun:
    """What one service published for the inputs, in order, plus its final state."""

    outputs: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, dict[str, Any]] = field(default_factory=dict)


def make_inputs(service: str, count: int, seed: int = 11) -> list[InputRecord]:
    """``count`` simulated records for a service, about 4 % of them broken in ways the DLQ must catch."""
    from tools.loadgen.generator import corrupt, sim_records  # the tools sit above; only the recorder needs them

    rng = random.Random(seed)
    next_offset = [0] * PARTITIONS
    records = []
    for i, (_, (key, value)) in enumerate(itertools.islice(sim_records(SCENARIO_OF_SERVICE[service], seed), count)):
        raw_key: bytes | None = key
        if rng.random() < 0.03:
            key, value = corrupt((key, value), rng)
            raw_key = key
        elif rng.random() < 0.01:
            value = b"\xff\xfe" + value  # invalid UTF-8
        elif rng.random() < 0.005:
            raw_key = None  # missing key
        elif rng.random() < 0.005:
            raw_key = b"someone-else"  # key_mismatch
        elif rng.random() < 0.01:
            value = _unscorable(service, value)  # valid, but the scorer must reject it
        partition = zlib.crc32(key) % PARTITIONS
        records.append(InputRecord(raw_key, value, partition, next_offset[partition], 1_700_000_000_000 + 250 * i))
        next_offset[partition] += 1
    return records


def _unscorable(service: str, value: bytes) -> bytes:
    event = json.loads(value)
    if service == "recommendation":
        event["item_id"] = 987_654_321  # not in any catalogue: unknown_item
    elif service == "pricing":
        event["floor"], event["ceiling"] = 90.0, 10.0  # no feasible price: unpriceable
    elif service == "support":
        event["text"] = "my card\x07 was declined"  # a control character: the schema refuses it
    return json.dumps(event).encode()


def replay(service: str, inputs: Sequence[InputRecord], models_dir: Path,
           model_version: str | None = None) -> GoldenRun:
    """Score the inputs as the runtime would, ``BATCH_SIZE`` records at a time, with ``model_version``
    (default: the newest, as a service would load)."""
    spec = load_service(service)
    settings = spec.settings_class(models_dir=models_dir, model_poll_interval_s=3600, config_topic=None,
                                   intra_op_threads=1, execution_providers=["cpu"], model_version=model_version)
    scorer = spec.create_scorer(settings)
    state = StateStore() if scorer.stateful else None
    scorer.load(LoadContext(settings=settings, state=state))
    decoder = RecordDecoder(scorer, settings.service_name, settings.runtime.max_message_bytes,
                            settings.runtime.dlq_message_max_chars)
    builder = RecordBuilder(decoder, settings.output_topic, settings.resolved_dlq_topic,
                            settings.resolved_changelog_topic)
    run = GoldenRun()
    try:
        for start in range(0, len(inputs), BATCH_SIZE):
            _one_batch(scorer, decoder, builder, state, inputs[start:start + BATCH_SIZE], settings.input_topic, run)
    finally:
        scorer.close()
    if state is not None:
        run.state = {f"{p}/{k}": state_view(service, v) for p in range(PARTITIONS)
                     for k, v in sorted(state.snapshot(p).items())}  # fmt: skip
    return run


def state_view(service: str, value: Any) -> Any:
    """A state value as the golden files compare it: fraud's binary velocity state in its legacy dict
    layout (devices and countries hashed, on both sides), any other value as it is."""
    if service != "fraud":
        return value
    from services.fraud.velocity import legacy_view

    return legacy_view(value)


def _one_batch(scorer: Scorer[Any], decoder: RecordDecoder, builder: RecordBuilder, state: StateStore | None,
               batch: Sequence[InputRecord], topic: str, run: GoldenRun) -> None:
    pending: list[Pending] = []
    dead: list[DeadLetterRecord] = []
    messages = [GoldenMessage(record, topic) for record in batch]
    for message, decoded in zip(messages, decoder.decode_many(messages), strict=True):
        if isinstance(decoded, DeadLetterRecord):
            dead.append(decoded)
        else:
            pending.append(Pending(decoded, message, 0.0))
    if pending:
        results = score_batch(scorer, [p.event for p in pending], state)
        scored, rejected = builder.scored(pending, results, scorer.model_info, scorer.schema_version)
        dead.extend(rejected)
        run.outputs.extend(_describe(r.topic, r.key, r.value, r.headers) for r in scored)
    run.outputs.extend(_describe(r.topic, r.key, r.value, r.headers) for r in builder.dead_letters(dead))
    if state is not None:
        state.drain_changes()


def _describe(topic: str, key: bytes | None, value: bytes | None,
              headers: Sequence[tuple[str, str | bytes | None]]) -> dict[str, Any]:
    kept = {name: _text(raw) for name, raw in headers if name not in CLOCK_HEADERS}
    described: dict[str, Any] = {"topic": topic, "key": _b64(key), "headers": kept}
    try:
        described["value"] = json.loads(value) if value is not None else None
    except ValueError:
        described["raw_value"] = _b64(value)
    return described


def _text(raw: str | bytes | None) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    return raw.decode("utf-8", errors="backslashreplace")


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


def save(service: str, inputs: Sequence[InputRecord], run: GoldenRun) -> Path:
    path = GOLDEN_DIR / f"{service}.json.gz"
    document = {
        "service": service,
        "batch_size": BATCH_SIZE,
        "inputs": [{"key": _b64(r.key), "value": _b64(r.value), "partition": r.partition, "offset": r.offset,
                    "timestamp_ms": r.timestamp_ms} for r in inputs],
        "outputs": run.outputs,
        "state": run.state,
    }
    path.write_bytes(gzip.compress(json.dumps(document, sort_keys=True).encode(), mtime=0))
    return path


def load(service: str) -> tuple[list[InputRecord], GoldenRun]:
    document = json.loads(gzip.decompress((GOLDEN_DIR / f"{service}.json.gz").read_bytes()))
    inputs = [InputRecord(_unb64(r["key"]), _unb64(r["value"]), r["partition"], r["offset"], r["timestamp_ms"])
              for r in document["inputs"]]
    state = {key: state_view(service, value) for key, value in document["state"].items()}
    return inputs, GoldenRun(document["outputs"], state)


def recorded_version(run: GoldenRun) -> str:
    """The model version a golden run scored with (its outputs' ``x-model-version`` header).

    A replay pins it: the goldens hold one fixed model's outputs, and a newer default version
    changes the scores on purpose without the hot path having changed."""
    return str(next(o["headers"][h.MODEL_VERSION] for o in run.outputs if h.MODEL_VERSION in o["headers"]))


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def numbers_close(expected: Any, actual: Any, tolerance: float = 1e-5) -> Iterator[str]:
    """Where two JSON documents differ: floats by more than ``tolerance`` (relative above 1), anything else at all."""
    yield from _diff(expected, actual, "$", tolerance)


def _diff(expected: Any, actual: Any, path: str, tolerance: float) -> Iterator[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            if key not in expected or key not in actual:
                yield f"{path}.{key}: only in {'expected' if key in expected else 'actual'}"
            else:
                yield from _diff(expected[key], actual[key], f"{path}.{key}", tolerance)
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            yield f"{path}: {len(expected)} items expected, {len(actual)} found"
        for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
            yield from _diff(e, a, f"{path}[{i}]", tolerance)
    elif isinstance(expected, float) and isinstance(actual, float | int) and not isinstance(actual, bool):
        if abs(expected - actual) > tolerance * max(1.0, abs(expected)):
            yield f"{path}: {expected!r} expected, {actual!r} found"
    elif expected != actual:
        yield f"{path}: {expected!r} expected, {actual!r} found"


def main(argv: Sequence[str] | None = None) -> None:
    """Record again (only when outputs change on purpose): ``python -m tests.support.golden fraud ...``."""
    import sys

    for service in argv if argv is not None else sys.argv[1:]:
        inputs = make_inputs(service, 300 if service == "ad_ctr" else 800)
        run = replay(service, inputs, Path("models").resolve())
        print(service, len(inputs), "inputs ->", len(run.outputs), "outputs:", save(service, inputs, run))


if __name__ == "__main__":
    main()
