"""The support intent model's export path on a tiny random BERT and a tiny tokenizer:
fine-tune, export, parity gate, variants, the tokenizer asset, and ``--from`` on a shop's CSV."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from tokenizers import Tokenizer

from export.cli import run_export
from export.support import metrics
from export.support.model import encode
from shared.models import ModelRepository
from shared.models.session import OnnxModel
from tests.support.support_model import INTENTS, write_base, write_data, write_shop_csv

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRepository, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("support")
    base, data = write_base(root / "base"), write_data(root / "data")
    common = ["--quiet", "--data", str(data), "--models-dir", str(root / "models"), "--tiny"]
    assert run_export(["support", *common, "--epochs", "2", "--set", f"base={base}"]) == 0
    shop = write_shop_csv(root / "shop.csv")
    assert run_export(["support", *common, "--from", "v0001", "--set", f"data={shop}"]) == 0
    return ModelRepository(root / "models"), root


def test_manifest_keeps_the_contract_the_service_codes_against(exported: tuple[ModelRepository, Path]) -> None:
    repo, _ = exported
    m = repo.verify("support", "v0001")
    assert [(t.name, t.dtype, t.shape) for t in m.inputs] == [
        ("input_ids", "int64", ("batch", "seq")), ("attention_mask", "int64", ("batch", "seq"))]
    assert [(t.name, t.dtype, t.shape) for t in m.outputs] == [
        ("logits", "float32", ("batch", 3)), ("probs", "float32", ("batch", 3))]
    assert m.preprocessing["labels"] == list(INTENTS) and m.preprocessing["max_length"] == 64
    assert 0.0 <= m.preprocessing["escalation_threshold"] <= 1.0
    assert m.preprocessing["threshold_target_accuracy"] == 0.97
    assert {"onnx_accuracy", "onnx_macro_f1", "onnx_ece", "onnx_coverage"} <= set(m.metrics)
    assert m.parity is not None and m.parity.passed and m.parity.samples == 1 + 6 + 6
    assert set(m.variants) == {"fp16", "int8"}
    for variant in m.variants.values():
        assert {"accuracy", "macro_f1"} <= set(variant.metric_delta)


def test_tokenizer_asset_loads_bare_and_the_graph_takes_any_batch_and_length(
        exported: tuple[ModelRepository, Path]) -> None:
    repo, _ = exported
    m = repo.get("support", "v0001")
    raw = repo.read_asset(m, "tokenizer").decode("utf-8")
    assert m.assets["tokenizer"].file == "tokenizer.json"
    assert json.loads(raw)["padding"] is None and json.loads(raw)["truncation"] is None
    tok = Tokenizer.from_str(raw)
    graph = OnnxModel(repo.path("support", "v0001") / m.file, name="support", version="v0001", providers=["cpu"])
    for texts in (["refund"], ["where is my card", "my card payment was declined twice today", "refund please"]):
        ids, mask = encode(tok, texts, m.preprocessing["max_length"])
        out = graph.run({"input_ids": ids, "attention_mask": mask})
        assert out["probs"].shape == (len(texts), 3)
        np.testing.assert_allclose(out["probs"].sum(1), 1.0, atol=1e-5)
        np.testing.assert_allclose(out["probs"], torch.softmax(torch.from_numpy(out["logits"]), -1).numpy(),
                                   atol=1e-5)


def test_checkpoint_is_half_size_and_fine_tuning_adds_the_shops_new_intent(
        exported: tuple[ModelRepository, Path]) -> None:
    repo, _ = exported
    m1, m2 = repo.get("support", "v0001"), repo.verify("support", "v0002")
    assert m1.checkpoint is not None
    with safe_open(str(repo.path("support", "v0001") / m1.checkpoint.file), "pt") as fh:
        assert fh.get_tensor("head.weight").dtype == torch.float16
    assert m2.training.from_version == "v0001" and m2.training.data.startswith("csv:")
    assert m2.preprocessing["labels"] == [*INTENTS, "where_is_my_parcel"]
    assert m2.outputs[1].shape == ("batch", 4)
    assert repo.read_asset(m2, "tokenizer") == repo.read_asset(m1, "tokenizer")


def test_threshold_is_the_lowest_that_reaches_the_target_and_ece_sees_overconfidence() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.55, 0.45]], dtype=np.float32)
    labels = np.array([0, 0, 1, 0])
    assert metrics.choose_threshold(probs, labels, 0.99) == pytest.approx(0.8)
    assert metrics.answered(probs, labels, 0.8) == (0.5, 1.0)
    assert metrics.choose_threshold(probs, labels, 0.75) == pytest.approx(0.55)
    assert metrics.ece(np.array([[1.0, 0.0]] * 4), np.array([0, 0, 1, 1])) == pytest.approx(0.5)
    assert metrics.macro_f1(probs, labels) == pytest.approx((6 / 7 + 0) / 2)
