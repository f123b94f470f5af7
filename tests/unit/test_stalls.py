"""A partition with records waiting and no progress is named stalled; a pause or an idle one is not."""

from __future__ import annotations

from shared.runtime.stalls import StallWatch
from tests.support.loop_harness import harness


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_only_a_partition_with_records_waiting_and_no_progress_for_the_stall_time_is_stalled() -> None:
    clock = Clock()
    watch = StallWatch(stall_after_s=10, clock=clock)  # the mappings: records waiting, not yet fetched
    assert watch.check({0, 1, 2}, {0: 5, 1: 0, 2: 5}, paused=False) == (frozenset(), frozenset())
    clock.now += 9
    watch.progressed([2])
    assert watch.check({0, 1, 2}, {0: 5, 1: 0, 2: 5}, paused=False).started == frozenset()
    clock.now += 1
    started, ended = watch.check({0, 1, 2}, {0: 5, 1: 0, 2: 5}, paused=False)
    assert started == {0} and not ended, "1 has nothing waiting (idle, not stalled); 2 progressed 1 s ago"
    clock.now += 30
    assert watch.check({0, 1, 2}, {0: 5, 1: 0, 2: 5}, paused=False).started == {2}
    watch.progressed([0])
    assert watch.check({0, 1, 2}, {0: 5, 1: 0, 2: 5}, paused=False) == (frozenset(), frozenset({0}))
    assert watch.stalled == {2}


def test_a_pause_is_not_a_stall_and_its_clock_starts_again_on_resume() -> None:
    clock = Clock()
    watch = StallWatch(stall_after_s=10, clock=clock)
    watch.check({0}, {0: 5}, paused=False)
    clock.now += 60
    assert watch.check({0}, {0: 5}, paused=True).started == frozenset(), "paused: its reason is stated elsewhere"
    clock.now += 9
    assert watch.check({0}, {0: 5}, paused=False).started == frozenset()
    clock.now += 1
    assert watch.check({0}, {0: 5}, paused=False).started == {0}
    assert watch.check(set(), {}, paused=False).ended == {0}, "a revoked partition is not stalled here"


def test_the_loop_names_a_stalled_partition_in_readiness_and_metrics_and_clears_it_on_progress() -> None:
    t = harness(stall_after_s=5.0)
    t.consumer.paused.add(1)  # the fetch of partition 1 hangs (not a pause of the runtime's)...
    t.add(1, "u8", "u9")  # ...while records arrive on it: its leader's end offset is 2
    t.app.assignment.report_positions({1: 0})  # the consumer's next fetch offset stays 0
    for _ in range(6):
        t.clock.now += 1.0
        t.add(0, "u1")  # partition 0 keeps flowing
        t.app.end_offsets.refresh()
        t.loop.turn()
    assert t.app.health.reasons() == ["stalled partitions: in[1]"]
    sample = t.app.metrics.registry.get_sample_value
    assert sample("shopstream_partition_stalled", {"service": "echo", "topic": "in", "partition": "1"}) == 1
    assert sample("shopstream_partition_stalled", {"service": "echo", "topic": "in", "partition": "0"}) == 0
    assert sample("shopstream_partition_stalls_total", {"service": "echo", "topic": "in"}) == 1
    progress = sample("shopstream_partition_last_progress_timestamp_seconds",
                      {"service": "echo", "topic": "in", "partition": "0"})
    assert progress is not None and progress > 1.7e9

    t.consumer.paused.discard(1)  # the fetch comes back
    t.app.assignment.report_positions({1: 2})
    t.clock.now += 1.0
    t.loop.turn()
    t.loop.turn()
    assert t.app.health.ready()
    assert sample("shopstream_partition_stalled", {"service": "echo", "topic": "in", "partition": "1"}) == 0
    t.consumer.revoke([1])
    t.clock.now += 1.0
    t.loop.turn()
    assert sample("shopstream_partition_stalled", {"service": "echo", "topic": "in", "partition": "1"}) is None
