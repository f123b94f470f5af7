"""The batched plain loop's work per batch: the service's scorer and records, and nothing else."""

from __future__ import annotations

from typing import cast

import pytest
from confluent_kafka import Consumer

from shared.schemas import headers as h
from tests.support.fake_kafka import FakeConsumer, echo_record
from tools.bench.loops import plain_handler, ready_records
from tools.bench.runtime import ECHO_ENV
from tools.bench.scoring import RawRecord
from tools.bench.wiring import batch_size, bench_topics


def test_the_plain_loop_scores_with_the_service_and_drops_what_the_service_would_dead_letter() -> None:
    topics = bench_topics("echo", "bench-in", "bench-out")
    handle = plain_handler("echo", topics)
    batch = [RawRecord("bench-in", 2, 10, b"u1", b'{"id": "u1", "value": 1}', 1_700_000_000_000),
             RawRecord("bench-in", 2, 11, b"u2", b"not json", 1_700_000_000_001),
             RawRecord("bench-in", 2, 12, b"reject-me", b'{"id": "reject-me"}', 1_700_000_000_002)]
    out = handle(batch)  # type: ignore[arg-type]  # RawRecord stands in for a Message
    assert [(r.topic, r.key) for r in out] == [("bench-out", b"u1")]  # no dead-letter topic, no changelog
    assert b'"id":"u1"' in (out[0].value or b"")
    headers = dict(out[0].headers)
    assert headers[h.SOURCE_OFFSET] == b"10" and headers[h.EVENT_TIME_MS] == b"1700000000000"
    assert headers[h.MODEL_NAME] == b"echo"
    assert handle([]) == []


def test_loops_consume_the_batch_size_the_service_runs_with(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOPSTREAM_FRAUD_RUNTIME__MAX_BATCH_SIZE", raising=False)
    assert batch_size("echo", ECHO_ENV) == 1000
    assert batch_size("fraud") == 256


def test_the_loops_take_what_is_ready_and_wait_only_when_nothing_is() -> None:
    """Like the runtime: a loop that waited for a full batch would lose on latency for nothing."""
    consumer = FakeConsumer("in")
    consumer.assign([0])
    for i in range(3):
        consumer.append(0, *echo_record(f"u{i}"))
    assert len(ready_records(cast(Consumer, consumer), 2)) == 2
    assert consumer.timeouts == [0] and consumer.poll_timeouts == []
    assert len(ready_records(cast(Consumer, consumer), 2)) == 1
    assert ready_records(cast(Consumer, consumer), 2) == []
    assert consumer.poll_timeouts == [0.1], "an idle loop waits for the first record, not for a batch"
