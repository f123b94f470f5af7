"""Tiny ONNX models built without torch, for tests and runtime benchmarks.

``publish_linear`` writes a real, checksummed version into a repository in milliseconds:
``score = sigmoid(features @ w + b)`` with seeded weights, so each version scores
differently and a test can tell which one served.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from shared.models.manifest import ModelManifest, TensorSpec, TrainingInfo, file_ref
from shared.models.repository import ModelRepository

LINEAR_INPUTS = [TensorSpec(name="features", dtype="float32", shape=("batch", 4))]
LINEAR_OUTPUTS = [TensorSpec(name="score", dtype="float32", shape=("batch", 1))]


def linear_onnx(n_features: int = 4, seed: int = 0, input_name: str = "features") -> bytes:
    """A logistic-regression graph ``features[batch, n] → score[batch, 1]``."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.normal(size=(n_features, 1)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.array([rng.normal()], dtype=np.float32), "b")
    nodes = [
        helper.make_node("MatMul", [input_name, "w"], ["z0"]),
        helper.make_node("Add", ["z0", "b"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def publish_linear(
    repository: ModelRepository,
    name: str = "linear",
    *,
    seed: int = 0,
    version: str | None = None,
    input_name: str = "features",
) -> ModelManifest:
    """Write a new version of a 4-feature linear model into ``repository``.

    ``input_name`` changes the graph's input name (and the manifest's), to test spec checks.
    """
    inputs = [spec.model_copy(update={"name": input_name}) for spec in LINEAR_INPUTS]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(linear_onnx(seed=seed, input_name=input_name))
        ref = file_ref(path)
        manifest = ModelManifest(
            name=name,
            version="pending",
            sha256=ref.sha256,
            size_bytes=ref.size_bytes,
            inputs=inputs,
            outputs=LINEAR_OUTPUTS,
            feature_spec={"features": ["f0", "f1", "f2", "f3"]},
            preprocessing={"seed": seed},
            training=TrainingInfo(data="synthetic", rows=0),
            opset=17,
        )
        return repository.write_version(manifest, {"model.onnx": path}, version=version)


def publish_copy(repository: ModelRepository, source: ModelRepository, name: str, version: str) -> ModelManifest:
    """``source``'s ``name`` ``version``, published in ``repository`` under its next version: the same
    files and checksums, a new version name (a candidate that costs exactly what the live one does)."""
    folder = source.path(name, version)
    files = {p.name: p for p in folder.iterdir() if p.is_file() and p.name != "manifest.json"}
    return repository.write_version(source.get(name, version), files)
