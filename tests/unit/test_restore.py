"""Restoring state from the changelog: last writes only, and a restore fails only when it stalls.

The consumer is an in-memory stand-in (a unit test of the replay logic); the broker round trip is
covered by the integration tests that SIGKILL a stateful service and check its state.
"""

from __future__ import annotations

import random

import pytest
from confluent_kafka import KafkaError

from shared.errors import BrokerUnavailable
from shared.runtime import restore
from shared.runtime.restore import ChangelogReplay, restore_partitions
from shared.runtime.state import StateStore
from shared.settings import KafkaSettings
from tests.support.stubs import StubMessage

Record = tuple[bytes | None, bytes | None]


def _changelog(seed: int, writes: int = 400) -> list[Record]:
    """Writes over 30 keys, a tenth of them tombstones, a few keyless records."""
    rng = random.Random(seed)
    records: list[Record] = []
    for i in range(writes):
        key = f"k{rng.randrange(30)}".encode()
        roll = rng.random()
        if roll < 0.1:
            records.append((key, None))
        elif roll < 0.12:
            records.append((None, b'{"x": 0}'))
        else:
            records.append((key, f'{{"n": {i}, "pad": "{"x" * rng.randrange(50)}"}}'.encode()))
    return records


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("max_keys", [1000, 12])
def test_replaying_last_writes_leaves_what_replaying_every_write_leaves(seed: int, max_keys: int) -> None:
    records = _changelog(seed)
    every = StateStore(max_keys_per_partition=max_keys)
    every.apply_changelog(0, records)
    replay = ChangelogReplay()
    for key, value in records:
        replay.add(0, key, value)
    last = StateStore(max_keys_per_partition=max_keys)
    replay.apply(last)
    assert list(last.snapshot(0).items()) == list(every.snapshot(0).items())
    assert replay.records == len(records)


def _record(partition: int, key: bytes, value: bytes) -> StubMessage:
    return StubMessage(value, key, _partition=partition)


def _eof(partition: int) -> StubMessage:
    return StubMessage(None, None, _partition=partition, _error=KafkaError(KafkaError._PARTITION_EOF))


class _Consumer:
    """Hands out ``batches`` one per ``consume``, then nothing."""

    def __init__(self, batches: list[list[StubMessage]]) -> None:
        self.batches = batches

    def assign(self, _: object) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[StubMessage]:
        return self.batches.pop(0) if self.batches else []

    def close(self) -> None:
        pass


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.5  # each look at the clock is one consume's worth of time
        return self.now


def _patch(monkeypatch: pytest.MonkeyPatch, batches: list[list[StubMessage]]) -> None:
    monkeypatch.setattr(restore, "make_consumer", lambda *a, **k: _Consumer(batches))
    monkeypatch.setattr("shared.runtime.restore.time.monotonic", _Clock())


def test_a_slow_restore_goes_on_while_records_come_and_reports_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    # 200 consumes with one record each: 100+ s of clock, far past the 60 s stall limit
    batches = [[_record(0, f"k{i % 7}".encode(), f'{{"n": {i}}}'.encode())] for i in range(200)]
    _patch(monkeypatch, [*batches, [_eof(0)]])
    progress: list[int] = []
    store = StateStore()
    read = restore_partitions(KafkaSettings(), "log", [0], store, on_progress=lambda: progress.append(1))
    assert read == 200
    assert len(progress) == 201
    assert store.snapshot(0)["k3"] == {"n": 199 - (199 - 3) % 7}


def test_a_restore_that_gets_nothing_for_the_stall_time_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch(monkeypatch, [[_record(0, b"k", b'{"n": 1}')]])  # one record, then silence and no EOF
    with pytest.raises(BrokerUnavailable, match="no record for 60s"):
        restore_partitions(KafkaSettings(), "log", [0], StateStore())
