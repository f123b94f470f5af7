"""``shopstream replay --from/--to``: every accepted form, the refused ones, and their resolution to offsets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from shared.errors import ConfigError
from tests.support.cli import shopstream
from tools.replay.ranges import AtOffset, AtOffsets, AtTime, PartitionRange, parse_bound, resolve, total

T0 = int(datetime(2026, 12, 3, 8, 0, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(("text", "bound"), [
    ("2026-12-03T08:00:00Z", AtTime(T0)),
    ("2026-12-03T09:00:00+01:00", AtTime(T0)),
    ("2026-12-03T08:00:00", AtTime(T0)),  # no zone: UTC, as brokers stamp records
    ("2026-12-03T08:00:00.250Z", AtTime(T0 + 250)),
    (f"{T0}ms", AtTime(T0)),
    ("1200", AtOffset(1200)),
    ("0", AtOffset(0)),
    ("0:1200,1:1180", AtOffsets({0: 1200, 1: 1180})),
    ("3:7", AtOffsets({3: 7})),
])
def test_times_offsets_and_offsets_per_partition_parse(text: str, bound: object) -> None:
    assert parse_bound(text) == bound


@pytest.mark.parametrize(("text", "says"), [
    ("yesterday", "not a time or an offset"),
    ("", "not a time or an offset"),
    ("-5", "not a time or an offset"),
    ("0:10,1:-1", "not a time or an offset"),
    ("0:10,0:20", "named twice"),
    (str(T0), f"write {T0}ms for a time"),  # epoch ms without its suffix is not taken for an offset
])
def test_bad_bounds_are_configuration_errors_that_say_why(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_bound(text)


class Lookup:
    """Two partitions: 0 holds offsets 10..99 (retention removed 0..9), 1 holds 0..49; record
    timestamps are ``T0 + offset`` seconds."""

    def __init__(self) -> None:
        self.marks = {0: (10, 100), 1: (0, 50)}

    def partitions(self, topic: str) -> list[int]:
        return sorted(self.marks) if topic == "clicks" else []

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        return self.marks[partition]

    def offsets_for_time(self, topic: str, partitions: Sequence[int], ms: int) -> dict[int, int]:
        found = {}
        for p in partitions:
            low, high = self.marks[p]
            first = max(-(-(ms - T0) // 1000), low)
            found[p] = first if first < high else -1
        return found


def ranges(start: str, end: str | None = None) -> dict[int, tuple[int, int]]:
    resolved = resolve(Lookup(), "clicks", parse_bound(start), parse_bound(end) if end else None)
    return {p: (r.start, r.end) for p, r in resolved.items()}


def test_a_time_is_the_first_offset_at_or_after_it_in_each_partition() -> None:
    assert ranges(f"{T0 + 20_000}ms", f"{T0 + 40_500}ms") == {0: (20, 41), 1: (20, 41)}


def test_a_time_past_a_partitions_last_record_is_its_end() -> None:
    assert ranges(f"{T0 + 60_000}ms") == {0: (60, 100), 1: (50, 50)}


def test_to_defaults_to_the_partitions_ends_and_offsets_stay_within_what_they_hold() -> None:
    assert ranges("0") == {0: (10, 100), 1: (0, 50)}
    assert ranges("5", "70") == {0: (10, 70), 1: (5, 50)}


def test_offsets_per_partition_in_from_limit_the_range_to_those_partitions() -> None:
    assert ranges("1:5") == {1: (5, 50)}
    assert ranges("0", "0:30") == {0: (10, 30), 1: (0, 50)}  # --to: the others run to their ends


def test_a_partition_the_topic_lacks_is_refused() -> None:
    with pytest.raises(ConfigError, match="has no partition 7"):
        ranges("7:0")


def test_to_before_from_is_refused() -> None:
    with pytest.raises(ConfigError, match="--to is before --from on partition 0"):
        ranges("40", "30")


def test_a_missing_topic_is_refused() -> None:
    with pytest.raises(ConfigError, match="nosuch does not exist"):
        resolve(Lookup(), "nosuch", AtOffset(0))


def test_the_total_counts_each_partitions_records() -> None:
    assert total({0: PartitionRange(0, 10, 30), 1: PartitionRange(1, 5, 5)}) == 20


@pytest.mark.parametrize("args", [
    ["--from", "yesterday"],
    ["--from", str(T0)],
    ["--from", "0", "--to", "0:1,0:2"],
])
def test_the_command_exits_2_on_a_bad_range_before_reaching_kafka(args: list[str]) -> None:
    result = shopstream("replay", "recommendation", *args, "--model", "v0001", "--to-topic", "reco.replay",
                        "--bootstrap-servers", "127.0.0.1:1", timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("shopstream: error:") and "Traceback" not in result.stderr
