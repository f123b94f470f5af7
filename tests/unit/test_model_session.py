"""ONNX Runtime session wrapper: provider fallback, spec checks, warm-up, IO binding."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from shared.errors import ModelSpecMismatch, ScoringError
from shared.models import OnnxModel, TensorSpec
from shared.models import providers as providers_module
from tests.support.models import LINEAR_INPUTS, LINEAR_OUTPUTS, linear_onnx

HAS_GPU = Path("/dev/nvidia0").exists()


def test_provider_falls_back_to_cpu_with_one_clear_line(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    providers_module._probe.cache_clear()  # probe for real, inside this test's capture
    with caplog.at_level(logging.DEBUG):
        model = OnnxModel(linear_onnx(), name="fraud", version="v0007")
    out, err = capfd.readouterr()
    if HAS_GPU:
        assert model.provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    else:
        assert model.provider == "CPUExecutionProvider"
    assert f"model=fraud version=v0007 provider={model.provider} (requested: tensorrt,cuda,cpu)" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "EP Error" not in out + err and "[E:onnxruntime" not in err and "Failed to load library" not in err


def test_cpu_only_request_uses_cpu_and_thread_setting() -> None:
    model = OnnxModel(linear_onnx(), providers=["cpu"], intra_op_threads=1)
    assert model.provider == "CPUExecutionProvider"
    assert model._session.get_session_options().intra_op_num_threads == 1
    assert model.inputs == LINEAR_INPUTS and model.outputs == LINEAR_OUTPUTS


def test_worker_threads_do_not_spin_between_runs() -> None:
    """A stream's batches come with gaps; a spinning worker burned a core in them."""
    model = OnnxModel(linear_onnx(), providers=["cpu"], intra_op_threads=2)
    assert model._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_spec_mismatch_names_the_problem() -> None:
    model = OnnxModel(linear_onnx(), name="ad_ctr", version="v0002", providers=["cpu"])
    model.check_spec(LINEAR_INPUTS, LINEAR_OUTPUTS)
    model.check_spec({"features": "float32"}, {"score": "float32"})
    with pytest.raises(ModelSpecMismatch, match=r"missing input 'feats'.*unexpected input 'features'"):
        model.check_spec({"feats": "float32"})
    with pytest.raises(ModelSpecMismatch, match="input 'features' is float32, expected int64"):
        model.check_spec({"features": "int64"})
    with pytest.raises(ModelSpecMismatch, match=r"shape \['batch', 4\], expected \['batch', 8\]"):
        model.check_spec([TensorSpec(name="features", dtype="float32", shape=("batch", 8))])
    with pytest.raises(ModelSpecMismatch, match="missing output 'logits'"):
        model.check_spec(LINEAR_INPUTS, {"logits": "float32"})


def test_run_casts_safe_dtypes_and_wraps_failures() -> None:
    model = OnnxModel(linear_onnx(), name="pricing", version="v0001", providers=["cpu"])
    x = np.random.default_rng(0).normal(size=(5, 4))
    scores = model.run({"features": x})["score"]
    assert scores.shape == (5, 1) and scores.dtype == np.float32
    assert np.all((scores > 0) & (scores < 1))
    with pytest.raises(ScoringError, match="model pricing v0001"):
        model.run({"wrong": x.astype(np.float32)})


def test_io_binding_path_gives_the_same_scores() -> None:
    plain = OnnxModel(linear_onnx(seed=3), providers=["cpu"])
    bound = OnnxModel(linear_onnx(seed=3), providers=["cpu"], io_binding=True)
    x = np.random.default_rng(1).normal(size=(32, 4)).astype(np.float32)
    assert not plain.io_binding and bound.io_binding
    np.testing.assert_array_equal(plain.run({"features": x})["score"], bound.run({"features": x})["score"])


def test_warm_up_runs_each_batch_shape() -> None:
    model = OnnxModel(linear_onnx(), providers=["cpu"])
    assert not model.warmed_up
    assert model.zeros(8)["features"].shape == (8, 4)
    model.warm_up(batch_sizes=(1, 8, 256))
    assert model.warmed_up
