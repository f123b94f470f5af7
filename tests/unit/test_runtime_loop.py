"""The runtime's loop against in-memory Kafka clients: retries, rewinds, rebalances, backpressure.

Every test drives :class:`ServiceApp` turn by turn with :mod:`tests.support.fake_kafka` and a
fake clock, so each asserts exactly what the loop did to the consumer, the producer and the state.
The broker tests (tests/integration/test_runtime_*.py) check the same guarantees end to end.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError

from shared.errors import ConsumerOrphaned
from shared.runtime.loop import ACK_POLL_S, IDLE_POLL_S
from tests.support.loop_harness import FlakyEcho, harness
from tests.support.stubs import StubMessage


def test_a_failing_scorer_pauses_and_retries_the_same_batch_against_the_same_state() -> None:
    scorer = FlakyEcho(failures=1)
    t = harness(scorer)
    t.add(0, "u1", "u1", "u2")
    t.loop.turn()
    assert scorer.calls == [[(0, 0), (0, 1), (0, 2)]]
    assert t.consumer.paused == {0, 1} and t.paused_gauge() == 1
    assert t.app.health.reasons() == ["scorer failing: ScoringError"]
    assert t.producer.delivered == [] and t.consumer.commits == []

    t.add(0, "u1")
    t.clock.now += 0.5  # before the retry is due: the loop serves the consumer, scores nothing
    t.loop.turn()
    assert len(scorer.calls) == 1 and t.consumer.paused == {0, 1}

    t.clock.now += 0.5
    t.loop.turn()
    assert scorer.calls[1] == scorer.calls[0], "the same batch is retried"
    assert t.outputs() == [(0, 0, 1), (0, 1, 2), (0, 2, 1)], "the failed try's state writes were discarded"
    assert t.consumer.paused == set() and t.paused_gauge() == 0
    assert t.app.health.ready()
    assert t.consumer.committed == {0: 3}
    t.loop.turn()
    assert t.outputs()[-1] == (0, 3, 3), "the event fetched while paused is scored after the retried batch"


def test_retries_back_off_exponentially_and_the_poll_never_outlasts_the_retry() -> None:
    scorer = FlakyEcho(failures=3)
    t = harness(scorer, retry_max_backoff_s=3.0)
    t.add(1, "u1")
    t.loop.turn()
    waits = []
    for _ in range(3):
        assert t.loop.retry is not None
        waits.append(t.loop.retry.due_at - t.clock.now)
        assert t.loop.poll_timeout() <= min(waits[-1], IDLE_POLL_S)
        t.clock.now = t.loop.retry.due_at
        t.loop.turn()
    assert waits == [1.0, 2.0, 3.0] and len(scorer.calls) == 4
    assert t.loop.retry is None and t.outputs() == [(1, 0, 1)]


def test_an_idle_turn_waits_for_the_first_record_and_never_blocks_with_work_in_hand() -> None:
    t = harness(max_wait_ms=30_000)
    t.loop.turn()
    assert t.consumer.poll_timeouts == [IDLE_POLL_S], "idle: one wait for the next record"
    assert t.consumer.timeouts == [0], "what is ready is taken without waiting"


def test_a_lone_event_is_scored_in_the_turn_that_reads_it_whatever_max_wait_ms() -> None:
    t = harness(max_wait_ms=30_000)
    t.add(0, "u1")
    t.loop.turn()
    assert len(t.loop.parts.batcher) == 0 and t.producer.values("out") != [], "no waiting for company"
    assert all(timeout == 0 for timeout in t.consumer.timeouts)


def test_under_load_batches_fill_to_the_batch_size() -> None:
    scorer = FlakyEcho()
    t = harness(scorer, max_wait_ms=30_000, max_batch_size=4)
    t.add(0, *[f"u{i}" for i in range(10)])
    for _ in range(3):
        t.loop.turn()
    assert [len(call) for call in scorer.calls] == [4, 4, 2], "full batches while records are ready, then the rest"


def test_the_idle_wait_is_short_while_acknowledgements_are_awaited() -> None:
    t = harness()
    t.producer.hold = True
    t.add(0, "u1")
    t.loop.turn()
    t.loop.turn()
    assert t.consumer.poll_timeouts[-1] == ACK_POLL_S



def test_a_failed_delivery_rewinds_the_partition_and_scores_it_again() -> None:
    t = harness()
    t.producer.fail_topics = {"out"}
    t.add(0, "u1", "u2")
    t.add(1, "u3")
    t.loop.turn()
    assert t.app.health.reasons() == ["produce failing"]
    assert t.consumer.paused == {0, 1} and t.consumer.commits == []
    t.producer.fail_topics = set()
    t.loop.turn()
    assert sorted(t.consumer.seeks) == [(0, 0), (1, 0)], "each partition seeks back to its unit's first offset"
    assert t.producer.delivered == [r for r in t.producer.delivered if r.topic != "out"]
    t.clock.now += 1.0  # the produce back-off is over
    t.loop.turn()
    # at-least-once keeps the failed try's state (its changelog records went through): counts of a
    # replayed event may double; exactly-once restores the state instead (test below)
    assert sorted((p, o) for p, o, _ in t.outputs()) == [(0, 0), (0, 1), (1, 0)], "scored again, once each"
    assert t.consumer.committed == {0: 2, 1: 1} and t.app.health.ready()


def test_revoke_commits_done_work_and_drops_the_records_of_the_partition_in_hand() -> None:
    scorer = FlakyEcho()
    t = harness(scorer, max_batch_size=3, max_wait_ms=60_000, commit_interval_ms=60_000)
    t.add(0, "a", "b", "c")
    t.loop.turn()  # a full batch: scored, acknowledged and (first commit) committed
    t.add(0, "d", "e", "f")
    t.loop.turn()  # scored and acknowledged, not committed yet (the commit interval)
    assert t.consumer.committed == {0: 3}
    t.add(0, "g")
    t.add(1, "h")
    t.consumer.revoke_during_next_consume = [0]
    t.loop.turn()  # the fetch hands over g and h; the rebalance in the same call takes partition 0
    assert t.consumer.commits[-1] == {0: 6}, "the done work of the leaving partition is committed"
    assert scorer.calls[-1] == [(1, 0)], "the leaving partition's record is left to its next owner"
    assert t.app.state is not None and t.app.state.snapshot(0) == {}, "and writes no state for it"
    assert t.app.assignment.partitions == {1}


def test_a_lost_partition_commits_nothing() -> None:
    t = harness(max_batch_size=3, max_wait_ms=60_000, commit_interval_ms=60_000)
    t.add(0, "a", "b", "c")
    t.loop.turn()
    t.add(0, "d", "e", "f")
    t.loop.turn()
    before = list(t.consumer.commits)
    t.consumer.revoke([0], lost=True)
    assert t.consumer.commits == before, "a lost partition belongs to someone else already"


def test_revoke_drops_the_partition_from_a_batch_waiting_for_its_retry() -> None:
    scorer = FlakyEcho(failures=1)
    t = harness(scorer)
    t.add(0, "a")
    t.add(1, "b")
    t.loop.turn()
    t.consumer.revoke([1])
    t.clock.now += 1.0
    t.loop.turn()
    assert scorer.calls[-1] == [(0, 0)] and t.outputs() == [(0, 0, 1)]
    t.consumer.revoke([0])
    assert t.consumer.committed == {0: 1}


def test_assign_restores_state_from_the_changelog_before_scoring() -> None:
    t = harness(partitions=[0])
    t.add(0, "u1", "u1")
    t.loop.turn()
    t.consumer.revoke([0])
    assert t.app.state is not None and len(t.app.state) == 0
    t.consumer.assign([0])
    assert t.clients.restored[-1] == [0]
    t.add(0, "u1")
    t.loop.turn()
    assert t.outputs()[-1] == (0, 2, 3), "the restored count goes on"


def test_backpressure_pauses_while_too_much_is_in_flight_and_resumes_below_half() -> None:
    t = harness(max_inflight_messages=4)
    t.producer.hold = True
    t.add(0, "a", "b", "c", "d", "e")
    t.loop.turn()  # five scores and five changelog records await acknowledgement
    t.loop.turn()
    assert t.consumer.paused == {0, 1} and t.paused_gauge() == 1
    assert t.app.health.ready(), "backpressure slows the service down; it is still ready"
    t.producer.hold = False
    t.loop.turn()  # acknowledged at the end of this turn
    assert t.consumer.paused == {0, 1}
    t.loop.turn()
    assert t.consumer.paused == set() and t.paused_gauge() == 0


def test_an_aborted_transaction_rewinds_and_restores_the_partitions_state() -> None:
    t = harness(partitions=[0], delivery="exactly_once")
    t.add(0, "u1")
    t.loop.turn()
    assert t.producer.transaction_offsets == {0: 1} and t.outputs() == [(0, 0, 1)]
    t.producer.abort_commits = 1
    t.add(0, "u1")
    t.loop.turn()
    assert t.producer.aborted == 1 and t.outputs() == [(0, 0, 1)]
    t.clock.now += 1.0
    t.loop.turn()
    assert t.consumer.seeks == [(0, 1)] and t.clients.restored[-1] == [0]
    t.loop.turn()
    assert t.outputs() == [(0, 0, 1), (0, 1, 2)], "the aborted try's count was restored away"


def test_denied_then_a_delivered_unit_makes_the_service_ready_again() -> None:
    t = harness()
    t.consumer.errors = [StubMessage(None, _error=KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))]
    t.loop.turn()
    assert t.app.health.reasons() == ["denied by kafka: TOPIC_AUTHORIZATION_FAILED"]
    t.add(0, "u1")
    t.loop.turn()
    assert t.app.health.ready()


def test_drain_scores_the_open_batch_and_commits_but_not_a_batch_waiting_for_a_retry() -> None:
    t = harness(max_wait_ms=60_000, commit_interval_ms=60_000)
    t.add(0, "a")
    t.loop.turn()
    t.loop.drain(time.monotonic() + 5)
    assert t.outputs() == [(0, 0, 1)] and t.consumer.commits[-1] == {0: 1}

    scorer = FlakyEcho(failures=5)
    failing = harness(scorer)
    failing.add(0, "a")
    failing.loop.turn()
    assert failing.loop.retry is not None
    failing.loop.drain(time.monotonic() + 5)
    assert len(scorer.calls) == 1, "stopping while the scorer fails: no forced retry"
    assert failing.outputs() == [] and failing.consumer.commits == [], "and nothing committed past it"


def test_state_bytes_and_evictions_by_bound_are_exported() -> None:
    t = harness(partitions=[0], max_state_bytes_per_partition=40, max_state_keys_per_partition=3)
    t.add(0, "k1", "k2", "k3", "k4")  # {"count":1} is 11 bytes, 13 with its key: 3 fit in 40
    t.loop.turn()
    t.loop.turn()
    sample = t.app.metrics.registry.get_sample_value
    assert sample("shopstream_state_evictions_total", {"service": "echo", "reason": "keys"}) == 1
    assert sample("shopstream_state_bytes", {"service": "echo"}) == 39
    t.add(0, "k2", "k3")  # counts of 2: still 13 bytes each
    t.add(0, *[f"key{i}" for i in range(3)])  # 15 bytes each: 3 of them make 45 > 40
    t.loop.turn()
    t.loop.turn()
    assert sample("shopstream_state_evictions_total", {"service": "echo", "reason": "bytes"}) == 1
    assert sample("shopstream_state_bytes", {"service": "echo"}) == 30


def test_exactly_once_with_its_output_refused_pauses_and_resumes_instead_of_exiting() -> None:
    """The WRITE ACL of the output revoked: ``produce`` raises inside the transaction."""
    t = harness(partitions=[0], delivery="exactly_once", retry_initial_backoff_s=1.0)
    t.producer.refuse_topics = {"out"}
    t.add(0, "u1", "u2")
    t.loop.turn()
    assert t.producer.aborted == 1 and t.outputs() == []
    assert t.app.health.reasons() == ["produce failing"] and t.paused_gauge() == 1
    for _ in range(3):  # refused again after each back-off; never an exception out of the loop
        t.clock.now += 10.0
        t.loop.turn()
        t.loop.turn()
    assert t.producer.aborted >= 2 and t.outputs() == []
    t.producer.refuse_topics = set()  # granted again
    t.clock.now += 10.0
    for _ in range(3):
        t.loop.turn()
    assert t.outputs() == [(0, 0, 1), (0, 1, 1)], "scored once each, the aborted tries' state restored away"
    assert t.producer.transaction_offsets == {0: 2} and t.app.health.ready()


def test_exactly_once_waiting_for_its_commit_through_an_outage_is_alive_and_not_ready() -> None:
    """``commit_transaction`` times out while the brokers are away (retriable): the loop retries it,
    and each retry tells the liveness probe the loop is waiting, not wedged."""
    t = harness(partitions=[0], delivery="exactly_once")
    t.producer.timed_out_commits = 3
    seen: list[tuple[bool, float]] = []

    def look() -> None:
        seen.append((t.app.health.produce_failing, t.app.health.last_loop_at))
        t.app.health.last_loop_at = 0.0  # a retry that does not refresh it would leave it at 0

    t.producer.on_commit = look
    t.add(0, "u1")
    t.loop.turn()
    assert len(seen) == 4
    assert all(failing and alive > 0 for failing, alive in seen[1:]), seen
    assert t.outputs() == [(0, 0, 1)] and t.producer.transaction_offsets == {0: 1}
    assert t.app.health.ready(), "the commit that went through made it ready again"


def test_a_consumer_never_assigned_again_after_losing_its_partitions_exits_for_a_restart() -> None:
    t = harness()
    t.consumer.revoke([0, 1], lost=True)
    t.app.health.brokers_down = True  # an outage of any length is waited out
    for _ in range(5):
        t.clock.now += 60.0
        t.loop.turn()
    t.app.health.brokers_down = False  # the brokers answer again, and no assignment comes
    t.loop.turn()
    t.clock.now += 59.0
    t.loop.turn()
    t.clock.now += 2.0
    with pytest.raises(ConsumerOrphaned, match="fresh consumer"):
        t.loop.turn()


def test_an_assignment_after_a_loss_keeps_the_consumer() -> None:
    t = harness()
    t.consumer.revoke([0, 1], lost=True)
    t.loop.turn()
    t.consumer.assign([1])  # the group comes back, even with fewer partitions
    t.clock.now += 100.0
    t.loop.turn()
    assert t.app.health.lost_at is None
