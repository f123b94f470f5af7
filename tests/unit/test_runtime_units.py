"""The runtime's pure parts: batching deadlines, commit watermarks, state, decoding."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import KafkaError, KafkaException

from shared.runtime.app import ServiceApp
from shared.runtime.batcher import Batcher
from shared.runtime.codec import DeadLetterRecord, RecordDecoder
from shared.runtime.echo import EchoScorer, EchoSettings
from shared.runtime.offsets import WatermarkTracker
from shared.runtime.scorer import Event
from shared.runtime.state import StateStore
from shared.schemas import headers as h
from tests.support.fake_kafka import FakeClients
from tests.support.stubs import StubMessage


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_batch_flushes_when_full() -> None:
    clock = FakeClock(1000.0)
    batcher: Batcher[int] = Batcher(3, 1000, 10_000, 5, clock_ms=clock)
    for i in range(2):
        batcher.add(i, event_time_ms=1000)
    assert not batcher.is_due()
    batcher.add(2, event_time_ms=1000)
    assert batcher.is_due()
    assert batcher.take() == [0, 1, 2]


def test_batch_flushes_after_max_wait() -> None:
    clock = FakeClock(1000.0)
    batcher: Batcher[int] = Batcher(100, 20, 10_000, 5, clock_ms=clock)
    batcher.add(1, event_time_ms=1000)
    clock.now = 1019
    assert not batcher.is_due()
    clock.now = 1020
    assert batcher.is_due()


def test_batch_flushes_early_to_meet_the_oldest_events_budget() -> None:
    clock = FakeClock(1000.0)
    # the event happened 450 ms ago with a 500 ms budget and 30 ms of expected inference:
    # it must flush by t=1020 although max_wait would allow t=1200
    batcher: Batcher[int] = Batcher(100, 200, 500, 30, clock_ms=clock)
    batcher.add(1, event_time_ms=550)
    assert batcher.flush_at_ms() == 1020
    clock.now = 1019
    assert not batcher.is_due()
    clock.now = 1020
    assert batcher.is_due()


def test_events_already_late_batch_for_throughput() -> None:
    clock = FakeClock(10_000.0)
    batcher: Batcher[int] = Batcher(100, 20, 500, 5, clock_ms=clock)
    batcher.add(1, event_time_ms=0)  # ten seconds old: its budget cannot be saved
    assert batcher.flush_at_ms() == 10_020


def test_inference_estimate_follows_measurements() -> None:
    batcher: Batcher[int] = Batcher(100, 20, 500, 5)
    for _ in range(50):
        batcher.observe_inference(100)
    assert 95 < batcher.inference_estimate_ms <= 100


def test_watermark_waits_for_the_oldest_unfinished_unit() -> None:
    tracker = WatermarkTracker()
    first = tracker.open_unit({0: [0, 1, 2]}, [])
    second = tracker.open_unit({0: [3, 4]}, [])
    tracker.add_pending(first, 1)
    tracker.add_pending(second, 1)
    settled = tracker.acknowledge(second.unit_id, ok=True)
    assert settled is second
    tracker.finish(second)
    assert tracker.watermarks() == {0: 0}, "the later unit is done but the first is not: commit nothing"
    settled = tracker.acknowledge(first.unit_id, ok=True)
    assert settled is first
    tracker.finish(first)
    assert tracker.watermarks() == {0: 5}
    assert tracker.uncommitted() == {0: 5}
    tracker.mark_committed({0: 5})
    assert tracker.uncommitted() == {}


def test_failed_unit_never_advances_the_watermark() -> None:
    tracker = WatermarkTracker()
    unit = tracker.open_unit({1: [10, 11]}, [])
    tracker.add_pending(unit, 2)
    assert tracker.acknowledge(unit.unit_id, ok=False) is None
    settled = tracker.acknowledge(unit.unit_id, ok=True)
    assert settled is not None and settled.failed
    assert tracker.watermarks() == {1: 10}


def test_forgetting_a_partition_keeps_the_others() -> None:
    tracker = WatermarkTracker()
    unit = tracker.open_unit({0: [1], 1: [7]}, [])
    tracker.add_pending(unit, 1)
    tracker.forget_partitions({0})
    assert tracker.watermarks() == {1: 7}


def test_state_changes_become_changelog_records_and_restore() -> None:
    store = StateStore()
    store.put(0, "u1", {"items": [1, 2]})
    store.put(1, "u2", {"items": [3]})
    store.delete(1, "u2")
    changes = {(c.partition, c.key): c.value for c in store.drain_changes()}
    assert changes == {(0, "u1"): b'{"items":[1,2]}', (1, "u2"): None}
    assert store.drain_changes() == []
    restored = StateStore()
    restored.apply_changelog(0, [(b"u1", b'{"items":[1,2]}'), (b"u3", b"{}"), (b"u3", None)])
    assert restored.snapshot(0) == {"u1": {"items": [1, 2]}}


def test_state_is_bounded_and_evicts_least_recently_used() -> None:
    store = StateStore(max_keys_per_partition=2)
    store.put(0, "a", {"n": 1})
    store.put(0, "b", {"n": 2})
    store.get(0, "a")
    store.put(0, "c", {"n": 3})
    assert set(store.snapshot(0)) == {"a", "c"}
    assert store.evictions == 1
    tombstones = [c for c in store.drain_changes() if c.value is None]
    assert [t.key for t in tombstones] == ["b"], "an evicted key is forgotten in the changelog too"


def _decoder(max_bytes: int = 1000) -> RecordDecoder:
    return RecordDecoder(EchoScorer(), service="echo", max_bytes=max_bytes, max_message_chars=40)


def test_valid_record_becomes_an_event() -> None:
    msg = StubMessage(json.dumps({"id": "k", "value": 1.5}).encode(), _partition=3, _offset=9)
    event = _decoder().decode(msg)
    assert isinstance(event, Event)
    assert (event.key, event.partition, event.offset, event.timestamp_ms) == ("k", 3, 9, 1_700_000_000_000)


def _reason(msg: StubMessage, max_bytes: int = 1000) -> DeadLetterRecord:
    letter = _decoder(max_bytes).decode(msg)
    assert isinstance(letter, DeadLetterRecord)
    return letter


def test_bad_records_get_a_reason_and_full_headers() -> None:
    cases = {
        "malformed_json": StubMessage(b'{"id": "k", '),
        "invalid_utf8": StubMessage(b'{"id": "\xff\xfe"}'),
        "missing_field": StubMessage(b'{"value": 1}'),
        "invalid_value": StubMessage(b'{"id": "k", "value": "high"}'),
        "unknown_field": StubMessage(b'{"id": "k", "extra": 1}'),
        "missing_value": StubMessage(None),
        "missing_key": StubMessage(b'{"id": "k"}', _key=None),
        "key_mismatch": StubMessage(b'{"id": "k"}', _key=b"other"),
        "invalid_key": StubMessage(b'{"id": "k"}', _key=b"\xff"),
    }
    for expected, msg in cases.items():
        letter = _reason(msg)
        headers = dict(letter.headers)
        assert letter.reason == expected, (expected, headers[h.ERROR_MESSAGE])
        assert headers[h.ERROR_REASON] == expected.encode()
        assert headers[h.SOURCE_TOPIC] == b"in" and headers[h.SERVICE] == b"echo"
        assert len(headers[h.ERROR_MESSAGE] or b"") <= 40 * 4
        assert letter.value == msg.value(), "the raw bytes are kept for redrive"


def test_oversized_records_are_refused_before_parsing() -> None:
    letter = _reason(StubMessage(b"x" * 2000), max_bytes=1000)
    assert letter.reason == "oversized"
    message = dict(letter.headers)[h.ERROR_MESSAGE]
    assert isinstance(message, bytes) and b" bytes exceeds" in message and b"200" in message


def test_non_finite_numbers_are_refused() -> None:
    assert _reason(StubMessage(b'{"id": "k", "value": NaN}')).reason in {"malformed_json", "non_finite_number"}


def test_bulk_histogram_observation_matches_one_by_one() -> None:
    from prometheus_client import CollectorRegistry, Histogram
    from prometheus_client.exposition import generate_latest

    from shared.runtime.metrics import LATENCY_BUCKETS, observe_many

    values = [0.0, 0.001, 0.0011, 0.3, 7.0, 99.0, 0.05, 0.05]
    one, bulk = CollectorRegistry(), CollectorRegistry()
    single = Histogram("h", "h", buckets=LATENCY_BUCKETS, registry=one)
    batched = Histogram("h", "h", buckets=LATENCY_BUCKETS, registry=bulk)
    for v in values:
        single.observe(v)
    observe_many(batched, values)
    strip = [line for line in generate_latest(one).splitlines() if not line.startswith(b"h_created")]
    assert strip == [line for line in generate_latest(bulk).splitlines() if not line.startswith(b"h_created")]


def test_a_consumer_fatal_error_event_stops_the_loop_even_without_the_fatal_flag() -> None:
    """librdkafka hands a dead consumer's fatal error to consume() as code _FATAL with fatal() False
    (seen after a coordinator failover fenced a static member): the service must not poll it forever."""
    settings = EchoSettings()
    clients = FakeClients(settings.input_topic)
    app = ServiceApp(settings, EchoScorer(), clients=clients)
    assert app.state is None, "the echo scorer is stateless unless asked (its first parameter is stateful)"
    loop = app.start()
    clients.consumer_.assign([0])
    clients.consumer_.errors = [StubMessage(None, _error=KafkaError(KafkaError._TRANSPORT))]
    loop.turn()
    loop.turn()  # a transient error: librdkafka retries it
    assert not app.health.failing
    fenced = KafkaError(KafkaError._FATAL, "Static consumer fenced by other consumer with same group.instance.id")
    assert not fenced.fatal()
    clients.consumer_.errors = [StubMessage(None, _error=fenced)]
    loop.turn()
    assert app.health.failing and app.events.fatal is fenced
    assert app.health.reasons() == ["fatal kafka error: _FATAL"]
    with pytest.raises(KafkaException):
        loop.turn()


def test_state_is_bounded_in_bytes_too_and_evicts_least_recently_used_with_tombstones() -> None:
    store = StateStore(max_bytes_per_partition=60)
    store.put(0, "a", {"v": "x" * 10})  # 1 + 18 bytes as a changelog record
    store.put(0, "b", {"v": "y" * 10})
    store.put(1, "c", {"v": "z" * 40})  # another partition: its own budget
    store.drain_changes()
    assert store.bytes_held() == 19 + 19 + 49 and store.evictions == 0
    store.get(0, "a")
    store.put(0, "d", {"v": "w" * 20})  # 29 bytes: 67 > 60, so the least recently used key goes
    changes = [(c.partition, c.key, c.value is None) for c in store.drain_changes()]
    assert changes == [(0, "d", False), (0, "b", True)], "evicted in memory and tombstoned in the changelog"
    assert set(store.snapshot(0)) == {"a", "d"} and store.evicted == {"bytes": 1}
    store.put(0, "a", {"v": "x" * 40})  # a value that grows counts as it grows: 1 + 48, with d's 29
    assert [(c.key, c.value is None) for c in store.drain_changes()] == [("a", False), ("d", True)]
    assert store.bytes_held() == 49 + 49


def test_restoring_a_changelog_respects_the_byte_bound_and_counts_sizes() -> None:
    store = StateStore(max_bytes_per_partition=40)
    records = [(b"a", b'{"v":"' + b"x" * 10 + b'"}'), (b"b", b'{"v":"' + b"y" * 10 + b'"}'), (b"a", None),
               (b"c", b'{"v":"' + b"z" * 10 + b'"}'), (b"d", b'{"v":"' + b"w" * 10 + b'"}')]
    store.apply_changelog(0, records)
    assert set(store.snapshot(0)) == {"c", "d"} and store.bytes_held() == 38
