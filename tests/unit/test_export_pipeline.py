"""Export pipeline on the tiny reference model: parity gate, variants, publish, fine-tune."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from export.checkpoint import CHECKPOINT_FILE
from export.convert import export_onnx
from export.examples.tiny_mlp import TINY, Mlp, make_spec, train
from export.parity import check_parity
from export.pipeline import TrainedModel, export_and_publish
from export.registry import RecipeArgs
from shared.errors import ChecksumMismatch, ModelSpecMismatch, ParityError
from shared.models import ModelRepository, ModelSlot
from shared.models.manifest import TensorSpec, TrainingInfo

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRepository, TrainedModel]:
    torch.set_num_threads(1)
    repo = ModelRepository(tmp_path_factory.mktemp("models"))
    trained = train(TINY, RecipeArgs(models_dir=repo.root, tiny=True, progress=False))
    export_and_publish(trained, repo)
    return repo, trained


def test_tiny_export_passes_parity_and_serves_like_torch(published: tuple[ModelRepository, TrainedModel]) -> None:
    repo, trained = published
    manifest = repo.verify("tiny", "v0001")
    assert manifest.parity is not None and manifest.parity.passed
    assert manifest.parity.max_abs_diff["score"] < 1e-5 and manifest.parity.samples == 264
    assert manifest.inputs[0].shape == ("batch", 8) and manifest.opset == 17
    assert {"torch", "onnx", "onnxruntime-gpu"} <= set(manifest.libraries)
    assert set(manifest.timings) >= {"train", "export", "parity", "fp16", "int8"}
    slot = ModelSlot(repo, "tiny", providers=["cpu"], expected_inputs={"features": "float32"})
    slot.load()
    x = np.random.default_rng(5).normal(size=(16, 8)).astype(np.float32)
    with torch.no_grad():
        want = trained.module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(slot.run({"features": x})["score"], want, atol=1e-5)


def test_variants_record_their_metric_change(published: tuple[ModelRepository, TrainedModel]) -> None:
    repo, _ = published
    manifest = repo.get("tiny", "v0001")
    assert set(manifest.variants) == {"fp16", "int8"}
    for kind, variant in manifest.variants.items():
        assert set(variant.metric_delta) == {"auc", "logloss"}, kind
        assert abs(variant.metric_delta["auc"]) < 0.05
        assert variant.metrics["auc"] == pytest.approx(manifest.metrics["onnx_auc"] + variant.metric_delta["auc"])
        assert 0 < variant.max_abs_diff["score"] < 0.05
        _, data = repo.load_verified("tiny", "v0001", variant=kind)
        assert len(data) == variant.size_bytes
    assert manifest.variants["int8"].max_abs_diff["score"] > manifest.variants["fp16"].max_abs_diff["score"]


def test_tampered_initializer_fails_the_gate(published: tuple[ModelRepository, TrainedModel], tmp_path: Path) -> None:
    _, trained = published
    path = tmp_path / "model.onnx"
    export_onnx(trained.module, trained.spec, path)
    model = onnx.load(str(path))
    weight = model.graph.initializer[0]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.05, weight.name))
    onnx.save(model, str(path))
    with pytest.raises(ParityError) as info:
        check_parity(trained.module, path, trained.spec, trained.spec.heldout())
    assert info.value.output == "score" and info.value.max_abs_diff > info.value.atol == 1e-5
    assert "exceeds atol" in str(info.value)


class BakesTheBatchMean(torch.nn.Module):
    """A classic export bug: a Python float computed from the tracing sample is frozen into the graph."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = Mlp(8, (16,))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(torch.logit(self.mlp(features - float(features.mean()))))


def test_a_graph_that_differs_from_torch_is_never_published(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    repo = ModelRepository(tmp_path)
    trained = TrainedModel(module=BakesTheBatchMean(), spec=make_spec(TINY), training=TrainingInfo(), variants=())
    with pytest.raises(ParityError, match="output 'score'"):
        export_and_publish(trained, repo)
    assert repo.versions("tiny") == [] and not list(tmp_path.glob("tiny/*"))
    assert "TracerWarning" in caplog.text and "FAILED" in caplog.text


def test_sample_inputs_must_match_the_spec(published: tuple[ModelRepository, TrainedModel], tmp_path: Path) -> None:
    _, trained = published
    with pytest.raises(ModelSpecMismatch, match="'features' is float64, spec says float32"):
        export_onnx(trained.module, trained.spec, tmp_path / "m.onnx", {"features": np.zeros((3, 8))})
    extra = TensorSpec(name="unused", dtype="float32", shape=("batch", 2))
    spec = dataclasses.replace(
        trained.spec,
        inputs=(*trained.spec.inputs, extra),
        sample_inputs=lambda b, rng: {"features": np.zeros((b, 8), np.float32), "unused": np.zeros((b, 2), np.float32)},
    )
    with pytest.raises(ModelSpecMismatch, match=r"inputs \['features'\].*spec says \['features', 'unused'\]"):
        export_onnx(IgnoresAnInput(), spec, tmp_path / "m2.onnx")


class IgnoresAnInput(torch.nn.Module):
    def forward(self, features: torch.Tensor, unused: torch.Tensor) -> torch.Tensor:
        return features.sum(dim=1, keepdim=True)


def test_fine_tune_from_a_version_uses_its_checkpoint(published: tuple[ModelRepository, TrainedModel]) -> None:
    repo, trained = published
    args = RecipeArgs(models_dir=repo.root, tiny=True, progress=False, from_version="v0001", epochs=1, seed=3)
    tuned = train(TINY, args)
    assert tuned.training.from_version == "v0001"
    first = trained.module.state_dict()["net.0.weight"]
    assert torch.allclose(tuned.module.state_dict()["net.0.weight"], first, atol=0.05), "started from v0001"
    manifest = repo.get("tiny", "v0001")
    assert manifest.checkpoint is not None and manifest.checkpoint.file == CHECKPOINT_FILE
    path = repo.path("tiny", "v0001") / CHECKPOINT_FILE
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
        with pytest.raises(ChecksumMismatch):
            train(TINY, args)
    finally:
        path.write_bytes(original)


@pytest.mark.slow
def test_dynamo_exporter_also_passes_the_gate(tmp_path: Path) -> None:
    spec = dataclasses.replace(make_spec(TINY), exporter="dynamo")
    module = Mlp(8, (16,))
    export_onnx(module, spec, tmp_path / "model.onnx")
    info = check_parity(module, tmp_path / "model.onnx", spec, spec.heldout())
    assert info.passed and info.max_abs_diff["score"] < 1e-5
    opsets = {o.domain: o.version for o in onnx.load(str(tmp_path / "model.onnx")).opset_import}
    assert opsets[""] >= 18
