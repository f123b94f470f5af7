"""BatchCollector: a batch's garbage cycles are freed, what it leaves alive is frozen, and the
periodic full collection frees cycles that formed among frozen objects."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

from shared.runtime.collector import YOUNG_THRESHOLD, BatchCollector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.usefixtures("restored_collector")
def test_a_batch_leaves_no_cycles_and_its_survivors_are_frozen() -> None:
    clock = Clock()
    collector = BatchCollector(full_interval_s=600, clock=clock)
    collector.start()
    assert collector.managing and gc.get_threshold()[0] == YOUNG_THRESHOLD
    frozen_before = gc.get_freeze_count()

    garbage, garbage_ref = cycle()
    kept = [Node() for _ in range(100)]
    del garbage
    collector.after_batch()

    assert garbage_ref() is None  # the batch's garbage cycle was collected before the freeze
    assert gc.get_freeze_count() >= frozen_before + len(kept)
    assert collector.full_collections == 0


@pytest.mark.usefixtures("restored_collector")
def test_the_periodic_full_collection_frees_cycles_that_died_frozen() -> None:
    clock = Clock()
    collector = BatchCollector(full_interval_s=600, clock=clock)
    collector.start()
    held, held_ref = cycle()
    collector.after_batch()  # the cycle is alive here, so it is frozen
    del held
    clock.now = 100
    collector.after_batch()
    assert held_ref() is not None  # frozen garbage waits for the full collection
    clock.now = 601
    collector.after_batch()
    assert held_ref() is None
    assert collector.full_collections == 1


@pytest.mark.usefixtures("restored_collector")
def test_an_app_run_in_a_thread_leaves_the_collector_alone() -> None:
    collector = BatchCollector(full_interval_s=600)
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()

    def serve() -> None:
        collector.start()
        collector.after_batch()

    worker = threading.Thread(target=serve)
    worker.start()
    worker.join()
    assert not collector.managing
    assert (gc.get_threshold(), gc.get_freeze_count()) == (thresholds, frozen)
