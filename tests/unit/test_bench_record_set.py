"""The record set the I/O limit replays: the service's own records, per input event."""

from __future__ import annotations

from pathlib import Path

from shared.runtime.delivery import OutRecord
from shared.schemas import headers as h
from tools.bench.loops import io_limit_handler
from tools.bench.record_set import RecordSet, RecordSetBuilder
from tools.bench.runtime import echo_baselines, echo_records
from tools.bench.scoring import RawRecord

ROLES = {"svc.out": "output_topic", "svc.out.dlq": "dlq_topic", "svc.state": "changelog_topic"}


def _score(msg: RawRecord, value: bytes) -> OutRecord:
    headers: list[tuple[str, str | bytes | None]] = [
        (h.MODEL_NAME, b"fraud"), (h.SOURCE_TOPIC, b"bench"), (h.SOURCE_PARTITION, str(msg.partition()).encode()),
        (h.SOURCE_OFFSET, str(msg.offset()).encode()), (h.EVENT_TIME_MS, str(msg.timestamp()[1]).encode())]
    return OutRecord("svc.out", msg.key(), value, headers)


def _batch(start: int) -> tuple[list[RawRecord], list[OutRecord]]:
    inputs = [RawRecord("bench", 0, i, f"k{i}".encode(), b"{}", 1_700_000_000_000 + i) for i in range(start, start + 4)]
    outputs = [_score(m, b"score-%d" % m.offset_) for m in reversed(inputs)]  # attributed by offset, not order
    changelog = [OutRecord("svc.state", b"k", b"state-%d" % i, [], partition=0) for i in range(2)]
    return inputs, outputs + changelog


def test_records_are_attributed_to_their_input_event_and_the_changelog_is_spread() -> None:
    builder = RecordSetBuilder(ROLES, total=4, keep=4)
    builder.add(*_batch(0))
    record_set = builder.build()
    assert [r.value for r in record_set.events[0] if r.role == "output_topic"] == [b"score-0"]
    assert [len(records) for records in record_set.events] == [1, 2, 1, 2]  # 2 changelog records over 4 events
    assert record_set.per_event() == {"changelog_topic": 0.5, "output_topic": 1.0}
    assert record_set.count(10) == 10  # one score per input, cycling over the captured events
    assert record_set.count(10, ["changelog_topic"]) == 5


def test_a_long_capture_keeps_an_evenly_spaced_sample() -> None:
    builder = RecordSetBuilder(ROLES, total=8, keep=4)
    builder.add(*_batch(0))
    builder.add(*_batch(4))
    kept = [r.value for records in builder.build().events for r in records if r.role == "output_topic"]
    assert kept == [b"score-0", b"score-2", b"score-4", b"score-6"]


def test_replay_takes_lineage_from_the_consumed_record_and_keeps_the_rest(tmp_path: Path) -> None:
    builder = RecordSetBuilder(ROLES, total=4, keep=4)
    builder.add(*_batch(0))
    record_set = RecordSet.load(builder.build().save(tmp_path / "set.json"))  # what the loop process reads
    handle = io_limit_handler(record_set, {"output_topic": "run.out", "changelog_topic": "run.state"})
    consumed = RawRecord("bench-in", 3, 777, b"k9", b"{}", 1_700_000_000_123)
    out = handle([consumed, consumed])  # type: ignore[list-item]  # RawRecord stands in for a Message
    score = out[0]
    assert (score.topic, score.value, score.partition) == ("run.out", b"score-0", None)
    headers = dict(score.headers)
    assert headers[h.MODEL_NAME] == b"fraud"
    assert (headers[h.SOURCE_TOPIC], headers[h.SOURCE_PARTITION], headers[h.SOURCE_OFFSET]) == (
        b"bench-in", b"3", b"777")
    assert headers[h.EVENT_TIME_MS] == b"1700000000123"
    changelog = [r for r in out if r.topic == "run.state"]
    assert [(r.value, r.partition) for r in changelog] == [(b"state-0", 3)]  # the input record's partition


def test_echo_writes_one_score_per_event_with_the_service_lineage(tmp_path: Path) -> None:
    baselines = echo_baselines(echo_records(300), tmp_path)
    assert baselines.batch == 1000
    assert baselines.record_set.per_event() == {"output_topic": 1.0}
    first = baselines.record_set.events[0][0]
    assert first.key == b"u0" and b'"id":"u0"' in (first.value or b"")
    assert set(first.per_event) == {h.SOURCE_TOPIC, h.SOURCE_PARTITION, h.SOURCE_OFFSET, h.EVENT_TIME_MS}
    assert (tmp_path / "echo-record-set.json").exists()
