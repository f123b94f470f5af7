"""The model-limit sweep: where it stops, and that it reports the best stable point."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tools.bench import model_limit
from tools.bench.model_limit import BATCH_SIZES, ModelLimit, still_rising, sweep, thread_counts


def _measure(curve: dict[int, float], seen: list[int]) -> Callable[[int], list[float]]:
    """A fake timing: three repeats around ``curve[batch]`` rows/s, the middle one the median."""
    def measure(batch: int) -> list[float]:
        seen.append(batch)
        value = curve[batch]
        return [value * 0.9, value, value * 1.2]
    return measure


def test_the_sweep_goes_up_to_65536_rows_by_doubling() -> None:
    assert list(BATCH_SIZES) == [2**i for i in range(17)]


def test_a_curve_that_keeps_rising_is_swept_to_the_end() -> None:
    seen: list[int] = []
    points = sweep(_measure({b: 1000.0 * b ** 0.5 for b in BATCH_SIZES}, seen))
    assert seen == list(BATCH_SIZES)
    assert max(points, key=lambda p: p.median).batch == 65_536


def test_the_sweep_stops_after_two_doublings_in_a_row_that_gain_less_than_3_percent() -> None:
    curve = {1: 100.0, 2: 190.0, 4: 350.0, 8: 600.0, 16: 610.0, 32: 615.0, 64: 2000.0}
    seen: list[int] = []
    points = sweep(_measure({b: curve.get(b, 0.0) for b in BATCH_SIZES}, seen))
    assert seen == [1, 2, 4, 8, 16, 32]  # 8 → 16 (+1.7 %) and 16 → 32 (+0.8 %): 64 is never timed
    assert max(points, key=lambda p: p.median).batch == 32


def test_one_flat_doubling_between_rising_ones_does_not_stop_the_sweep() -> None:
    curve = {1: 100.0, 2: 101.0, 4: 150.0, 8: 151.0, 16: 300.0, 32: 301.0, 64: 302.0}
    seen: list[int] = []
    sweep(_measure({b: curve.get(b, 0.0) for b in BATCH_SIZES}, seen))
    assert seen == [1, 2, 4, 8, 16, 32, 64]


def test_a_fall_counts_as_no_gain_and_the_best_point_before_it_is_reported() -> None:
    curve = {1: 100.0, 2: 200.0, 4: 400.0, 8: 380.0, 16: 300.0}
    seen: list[int] = []
    points = sweep(_measure({b: curve.get(b, 0.0) for b in BATCH_SIZES}, seen))
    assert seen == [1, 2, 4, 8, 16]
    limit = ModelLimit("fraud", "fraud", "v1", "CPUExecutionProvider", "fp32", 2.0, points, threads=1)
    assert limit.best.batch == 4
    assert limit.events_per_s == 200.0  # the median of the repeats (400 rows/s), 2 rows per event


@pytest.mark.parametrize(("medians", "rising"), [
    ([100.0], True),
    ([100.0, 100.0], True),  # one flat doubling is not enough to stop
    ([100.0, 102.0, 104.0], False),
    ([100.0, 103.5, 104.0], True),  # a 3.5 % doubling keeps the sweep going
    ([100.0, 150.0, 151.0, 152.0], False),
    ([100.0, 90.0, 120.0], True),
])
def test_still_rising(medians: list[float], rising: bool) -> None:
    assert still_rising(medians) is rising


def test_the_limit_is_measured_at_one_thread_and_at_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert thread_counts() == (1, 8)
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert thread_counts() == (1,)


def test_thread_labels() -> None:
    limit = ModelLimit("fraud", "fraud", "v1", "CPUExecutionProvider", "fp32", 1.0, [], threads=2, all_cores=True)
    assert limit.threads_label == "2 threads (all cores)"
    assert ModelLimit("f", "f", "v1", "cpu", "fp32", 1.0, [], threads=1).threads_label == "1 thread"


def test_the_model_limit_times_the_graph_the_service_serves() -> None:
    """recommendation appends its masking and top-K to the exported graph; the feeds the service
    gave its model only fit that graph, so the limit must time it, not the bare file."""
    captured = model_limit.capture("recommendation", events=2048)
    assert captured.transform is not None
    model, _ = model_limit.load_model(captured.model, None, ("cpu",), 1, None, captured.transform)
    assert set(captured.feeds) <= {spec.name for spec in model.inputs}
    model.run(captured.feeds)
    # a batch is scored in several calls (groups of similar history lengths): all of them count,
    # so rows per event is the share of warm users, not only the first group's
    assert captured.rows_per_event > 0.33  # 0.39 with every call counted, 0.25 with the first group alone
