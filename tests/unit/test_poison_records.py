"""A record the scorer raises on is found by halving and dead-lettered; a scorer that fails on
everything still only pauses. Driven turn by turn with in-memory clients and a fake clock; the
broker tests are in tests/integration/test_poison_records.py."""

from __future__ import annotations

from shared.runtime.retry import SCORER_ERROR
from shared.schemas import headers as h
from tests.support.loop_harness import FlakyEcho, Harness, harness


def run_until_idle(t: Harness, turns: int = 60) -> None:
    """Turn with the clock jumping past every back-off, until the loop has nothing left to retry."""
    for _ in range(turns):
        t.clock.now += 10.0
        t.loop.turn()
        if t.loop.retry is None and not len(t.loop.parts.batcher) and not t.loop.dead:
            return
    raise AssertionError("the loop still holds a failed batch")


def dead_letters(t: Harness) -> list[dict[str, str]]:
    return [{name: (raw or b"").decode() for name, raw in r.headers if isinstance(raw, bytes)}
            for r in t.producer.delivered if r.topic == "in.dlq"]


def test_a_poison_record_is_found_by_halving_and_dead_lettered_and_the_rest_is_scored_as_without_it() -> None:
    scorer = FlakyEcho(poison=["bad"])
    t = harness(scorer, max_batch_size=16, max_wait_ms=60_000)
    t.add(0, "u1", "u2", "u1", "u3", "u1")
    t.add(0, "bad")
    t.add(0, "u1", "u2")
    t.add(1, "u4", "u1")
    run_until_idle(t)

    letters = dead_letters(t)
    assert [(d[h.ERROR_REASON], d[h.ERROR_CLASS], d[h.SOURCE_OFFSET]) for d in letters] == [
        (SCORER_ERROR, "ValueError", "5")]
    assert "cannot score 'bad'" in letters[0][h.ERROR_MESSAGE]
    assert sorted(t.outputs()) == [(0, 0, 1), (0, 1, 1), (0, 2, 2), (0, 3, 1), (0, 4, 3), (0, 6, 4), (0, 7, 2),
                                   (1, 0, 1), (1, 1, 1)], "per-key counts as if the poison record never came"
    assert t.app.state is not None and "bad" not in t.app.state.snapshot(0)
    assert t.consumer.committed == {0: 8, 1: 2}, "committed past the dead letter"
    assert t.consumer.paused == set() and t.app.health.ready()
    tries = len(scorer.calls)
    assert tries <= 3 + 2 * 4 + 3, f"found in a few tries (3 whole, about 2 per halving, 3 alone), not {tries}"


def test_a_lone_poison_record_is_judged_by_probing_with_an_event_that_scored_before() -> None:
    """At a low rate every batch is one record: no neighbour shows that the scorer works."""
    scorer = FlakyEcho(poison=["bad"])
    t = harness(scorer)
    t.add(0, "u1")
    t.loop.turn()
    t.add(0, "bad")
    run_until_idle(t)
    t.add(0, "u1")
    t.loop.turn()
    assert [d[h.ERROR_REASON] for d in dead_letters(t)] == [SCORER_ERROR]
    assert t.outputs() == [(0, 0, 1), (0, 2, 2)], "the probe's state writes were discarded"
    assert t.consumer.committed == {0: 3}


def test_a_scorer_that_fails_on_everything_pauses_and_dead_letters_nothing() -> None:
    scorer = FlakyEcho()
    t = harness(scorer, max_batch_size=16, max_wait_ms=60_000, retry_max_backoff_s=4.0)
    t.add(0, "u1")
    t.loop.turn()
    scorer.down = True
    t.add(0, "u2", "u3", "u1", "u4")
    t.add(1, "u5")
    for _ in range(30):
        t.clock.now += 10.0
        t.loop.turn()
    assert dead_letters(t) == [] and t.outputs() == [(0, 0, 1)]
    assert t.consumer.paused == {0, 1} and t.app.health.reasons() == ["scorer failing: ScoringError"]
    assert t.loop.retry is not None and t.loop.retry.due_at - t.clock.now <= 4.0, "still backing off"

    scorer.down = False
    run_until_idle(t)
    assert dead_letters(t) == []
    assert sorted(t.outputs()) == [(0, 0, 1), (0, 1, 1), (0, 2, 1), (0, 3, 2), (0, 4, 1), (1, 0, 1)]
    assert t.consumer.paused == set() and t.app.health.ready()


def test_with_no_event_ever_scored_a_record_failing_alone_is_not_dead_lettered() -> None:
    """Nothing shows that the scorer works for anything: the failure may be systemic."""
    scorer = FlakyEcho(poison=["bad"])
    t = harness(scorer)
    t.add(0, "bad")
    for _ in range(10):
        t.clock.now += 10.0
        t.loop.turn()
    assert dead_letters(t) == [] and t.loop.retry is not None and not t.app.health.ready()


def test_a_revoke_during_the_search_drops_the_partition_from_every_part() -> None:
    scorer = FlakyEcho(poison=["bad"])
    t = harness(scorer, max_batch_size=16, max_wait_ms=60_000)
    t.add(0, "u1", "u2", "bad", "u3")
    t.add(1, "u4", "u5", "u6", "u7")
    for _ in range(3):  # three whole tries, the third failure halves the batch
        t.clock.now += 10.0
        t.loop.turn()
    assert t.loop.retry is not None and len(t.loop.retry.parts) == 2
    t.consumer.revoke([0])
    run_until_idle(t)
    assert dead_letters(t) == [], "the poison record left with its partition"
    assert sorted(t.outputs()) == [(1, 0, 1), (1, 1, 1), (1, 2, 1), (1, 3, 1)]
