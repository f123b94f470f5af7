"""ModelSlot: hot swap between batches, refused versions keep the old one serving."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.errors import ChecksumMismatch, ModelError
from shared.models import ModelRepository, ModelSlot
from shared.runtime.metrics import RuntimeMetrics
from tests.support.models import LINEAR_INPUTS, LINEAR_OUTPUTS, publish_linear

Setup = tuple[ModelRepository, "Clock", RuntimeMetrics]
X = {"features": np.ones((3, 4), dtype=np.float32)}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def corrupt(repo: ModelRepository, version: str) -> None:
    path = repo.path("linear", version) / "model.onnx"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


def failures(metrics: RuntimeMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "shopstream_model_load_failures_total", {"service": "svc", "reason": reason}
    )
    return value or 0.0


def make_slot(repo: ModelRepository, clock: Clock, metrics: RuntimeMetrics, **kwargs: Any) -> ModelSlot:
    kwargs.setdefault("background", False)
    return ModelSlot(
        repo, "linear", providers=["cpu"], expected_inputs=LINEAR_INPUTS, expected_outputs=LINEAR_OUTPUTS,
        warm_up_batches=(1, 8), poll_interval_s=5.0, metrics=metrics, clock=clock, **kwargs,
    )


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return ModelRepository(tmp_path), Clock(), RuntimeMetrics("svc")


def test_swap_to_newer_version_then_refuse_a_corrupt_one(setup: Setup) -> None:
    repo, clock, metrics = setup
    publish_linear(repo, seed=1)
    slot = make_slot(repo, clock, metrics)
    slot.load()
    v1_scores = slot.run(X)["score"]
    assert slot.model_info.version == "v0001"

    v2 = publish_linear(repo, seed=2)
    assert not slot.maybe_swap(), "polls are rate-limited"
    clock.now += 5.0
    assert slot.maybe_swap()
    assert slot.model_info.version == "v0002" and slot.model_info.sha256 == v2.sha256
    v2_scores = slot.run(X)["score"]
    assert not np.allclose(v1_scores, v2_scores)

    publish_linear(repo, seed=3)
    corrupt(repo, "v0003")
    clock.now += 5.0
    assert not slot.maybe_swap()
    assert slot.model_info.version == "v0002"
    np.testing.assert_array_equal(slot.run(X)["score"], v2_scores)
    assert failures(metrics, "checksum") == 1.0 and slot.refused == {"v0003": "checksum"}
    clock.now += 5.0
    assert not slot.maybe_swap()
    assert failures(metrics, "checksum") == 1.0, "a refused version is not retried every poll"
    info = metrics.registry.get_sample_value(
        "shopstream_model_info",
        {"service": "svc", "model": "linear", "model_version": "v0002", "sha256": v2.sha256[:12],
         "provider": "CPUExecutionProvider"},
    )
    assert info == 1.0
    assert metrics.registry.get_sample_value(
        "shopstream_model_info", {"service": "svc", "model": "linear", "model_version": "v0001",
                                  "sha256": repo.get("linear", "v0001").sha256[:12],
                                  "provider": "CPUExecutionProvider"}) is None


def test_background_swap_prepares_beside_the_serving_model(setup: Setup) -> None:
    repo, clock, metrics = setup
    publish_linear(repo, seed=1)
    slot = make_slot(repo, clock, metrics, background=True)
    slot.load()
    publish_linear(repo, seed=2)
    clock.now += 5.0
    assert not slot.maybe_swap(), "the first call only starts preparing v2"
    assert slot.model_info.version == "v0001"
    assert slot.maybe_swap(block=True)
    assert slot.model_info.version == "v0002"
    slot.close()


def test_spec_mismatch_is_refused_with_reason(setup: Setup) -> None:
    repo, clock, metrics = setup
    publish_linear(repo, seed=1)
    slot = make_slot(repo, clock, metrics)
    slot.load()
    publish_linear(repo, seed=2, input_name="feats")
    clock.now += 5.0
    assert not slot.maybe_swap()
    assert slot.model_info.version == "v0001"
    assert slot.refused == {"v0002": "spec"} and failures(metrics, "spec") == 1.0


def test_start_skips_a_broken_latest_and_serves_the_newest_good_one(setup: Setup) -> None:
    repo, clock, metrics = setup
    publish_linear(repo, seed=1)
    publish_linear(repo, seed=2)
    corrupt(repo, "v0002")
    seen: list[tuple[str, str]] = []
    slot = make_slot(repo, clock, metrics, on_failure=lambda v, reason, _e: seen.append((v, reason)))
    assert slot.load().manifest.version == "v0001"
    assert seen == [("v0002", "checksum")]


def test_pinned_version_must_load_and_is_not_swapped_away(setup: Setup) -> None:
    repo, clock, metrics = setup
    publish_linear(repo, seed=1)
    publish_linear(repo, seed=2)
    slot = make_slot(repo, clock, metrics, pinned_version="v0001")
    slot.load()
    clock.now += 50.0
    assert not slot.maybe_swap()
    assert slot.model_info.version == "v0001"
    slot.unpin()
    assert slot.maybe_swap() and slot.model_info.version == "v0002"
    slot.swap_to("v0001")  # an operator's rollback sticks: it pins
    clock.now += 50.0
    assert not slot.maybe_swap() and slot.model_info.version == "v0001"
    corrupt(repo, "v0002")
    with pytest.raises(ChecksumMismatch):
        slot.swap_to("v0002")
    assert slot.model_info.version == "v0001"


def test_nothing_to_load_is_a_clear_error(setup: Setup) -> None:
    repo, clock, metrics = setup
    slot = make_slot(repo, clock, metrics)
    with pytest.raises(ModelError, match="no usable version of model linear"):
        slot.load()
    with pytest.raises(ModelError, match="not loaded"):
        _ = slot.model_info


def test_swap_under_load_serves_every_batch_once_and_never_goes_back(setup: Setup) -> None:
    repo, clock, metrics = setup
    publish_linear(repo, seed=1)
    slot = make_slot(repo, clock, metrics, background=True)
    slot.load()
    served: list[str] = []
    deadline = time.monotonic() + 60
    while served.count("v0002") < 5 and time.monotonic() < deadline:
        current = slot.current  # one read per batch: model and manifest stay consistent
        assert current.model.run(X)["score"].shape == (3, 1)
        served.append(current.manifest.version)
        if len(served) == 10:
            publish_linear(repo, seed=2)
        clock.now += 1.0
        slot.maybe_swap()
        time.sleep(0.001)  # a batch's worth of work while v2 is prepared beside v1
    slot.close()
    switch = served.index("v0002")
    assert switch >= 10 and served[:switch] == ["v0001"] * switch and set(served[switch:]) == {"v0002"}
    assert slot.model_info.version == "v0002" and not slot.refused
