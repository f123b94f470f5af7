"""The parity arithmetic and the progress helper (no export needed)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from export.parity import compare, deviation
from export.progress import TrainingProgress, track

pytestmark = pytest.mark.train


def test_deviation_catches_shape_and_nan_mismatches() -> None:
    a = np.array([[0.5, 1.0], [np.inf, np.nan]])
    assert deviation(a, a.copy()) == (0.0, 0.0)
    assert deviation(a, a + 1e-3)[0] == pytest.approx(1e-3)
    assert deviation(a, a[:1]) == (float("inf"), float("inf"))
    b = a.copy()
    b[0, 0] = np.nan
    assert deviation(a, b)[0] == float("inf")


def test_rtol_relaxes_only_large_values() -> None:
    want = np.array([1000.0, 0.001])
    got = np.array([1000.05, 0.001])
    max_abs, excess = compare([{"y": want}], [{"y": got}], ["y"], rtol=1e-4)
    assert max_abs["y"] == pytest.approx(0.05)
    assert excess["y"] == 0.0, "0.05 on 1000 is within rtol 1e-4: the gate sees no excess"
    assert compare([{"y": want}], [{"y": got}], ["y"])[1]["y"] == pytest.approx(0.05)
    small = np.array([1000.0, 0.00105])
    assert compare([{"y": want}], [{"y": small}], ["y"], rtol=1e-4)[1]["y"] == pytest.approx(5e-5 - 1e-4 * 0.001)


def test_training_progress_logs_each_epoch(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO), TrainingProgress("fraud", epochs=2, steps_per_epoch=2, enabled=False) as p:
        for epoch in range(2):
            p.step(loss=1.0 + epoch)
            p.step(loss=float("nan"))
            p.end_epoch(val_auc=0.5 + epoch / 10)
    assert p.history == [{"loss": 1.0, "val_auc": 0.5}, {"loss": 2.0, "val_auc": 0.6}]
    assert "train model=fraud epoch=2/2 loss=2.0000 val_auc=0.6000" in caplog.text
    assert list(track(range(3), 3, "items", enabled=False)) == [0, 1, 2]
