"""The recommendation coverage window, counted incrementally, against a recount of the window."""

from __future__ import annotations

import random

from services.recommendation.coverage import WindowCoverage


def test_incremental_coverage_equals_a_recount_of_the_window_at_every_step() -> None:
    rng = random.Random(3)
    coverage = WindowCoverage(window=50)
    lists: list[list[int]] = []
    for _ in range(2_000):
        items = rng.sample(range(300), k=rng.randint(0, 10))
        coverage.add(items)
        lists = [*lists, items][-50:]
        assert coverage.distinct == len({i for row in lists for i in row})
        assert len(coverage) == len(lists)
