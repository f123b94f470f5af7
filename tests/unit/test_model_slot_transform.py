"""ModelSlot(transform=...): a verified file served with a graph rewritten at load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from shared.errors import ModelError
from shared.models import ModelRepository, ModelSlot
from shared.models.manifest import ModelManifest, TensorSpec
from tests.support.models import LINEAR_INPUTS, publish_linear

DOUBLED = [TensorSpec(name="doubled", dtype="float32", shape=("batch", 1))]
X = {"features": np.ones((3, 4), dtype=np.float32)}


def double_score(manifest: ModelManifest, graph: onnx.ModelProto) -> onnx.ModelProto:
    """Serve ``2 * score`` as ``doubled`` (edits the parsed graph; the file stays as it is)."""
    graph.graph.initializer.append(helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]))
    graph.graph.node.append(helper.make_node("Mul", ["score", "two"], ["doubled"]))
    del graph.graph.output[:]
    graph.graph.output.append(helper.make_tensor_value_info("doubled", TensorProto.FLOAT, ["batch", 1]))
    return graph


def slot(repo: ModelRepository, **kwargs: object) -> ModelSlot:
    return ModelSlot(repo, "linear", providers=["cpu"], expected_inputs=LINEAR_INPUTS, background=False,
                     warm_up_batches=(1,), **kwargs)  # type: ignore[arg-type]


def test_the_transformed_graph_serves_and_the_scorer_spec_is_checked_on_it(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    publish_linear(repo, seed=1)
    plain = slot(repo)
    plain.load()
    served = slot(repo, transform=double_score, expected_outputs=DOUBLED)
    served.load()
    assert np.allclose(served.run(X)["doubled"], 2 * plain.run(X)["score"])
    refused = slot(repo, transform=lambda m, g: g, expected_outputs=DOUBLED)
    with pytest.raises(ModelError):
        refused.load()
    assert refused.refused == {"v0001": "spec"}


def test_the_manifest_is_still_checked_against_the_file(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    publish_linear(repo, seed=1)
    path = repo.path("linear", "v0001") / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["outputs"][0]["name"] = "doubled"  # true of the served graph, not of the file
    path.write_text(json.dumps(manifest))
    served = slot(repo, transform=double_score, expected_outputs=DOUBLED)
    with pytest.raises(ModelError, match="manifest"):
        served.load()
    assert served.refused == {"v0001": "spec"}
