"""The fraud model: export parity, the published default model, occlusion reasons on real ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.fraud.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES, from_transaction, replay
from services.fraud.model import GROUPS, INPUTS, OUTPUTS, probabilities, reasons
from services.fraud.scorer import FraudScorer
from services.fraud.settings import FraudSettings
from shared.models.repository import ModelRepository
from shared.runtime.scorer import LoadContext
from shared.runtime.state import StateStore
from shared.schemas.payments import Transaction
from tests.support.fraud import T0, events, scores_of, txn

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_committed_default_model_matches_the_scorer_spec() -> None:
    repo = ModelRepository(MODELS)
    version = repo.latest("fraud")
    assert version is not None, "a default fraud model must be committed for the demo"
    manifest = repo.verify("fraud", version)
    assert manifest.inputs == INPUTS and manifest.outputs == OUTPUTS
    assert manifest.parity is not None and manifest.parity.passed
    assert manifest.size_bytes < 2_000_000
    assert manifest.metrics["pr_auc"] > 2 * manifest.metrics["rules_pr_auc"], "the model must beat the rules"


def test_default_model_declines_card_testing_and_explains_it() -> None:
    settings = FraudSettings(models_dir=MODELS, execution_providers=["cpu"])
    scorer = FraudScorer(settings)
    scorer.load(LoadContext(settings=settings, state=StateStore()))
    history = [txn(i, ts_ms=T0 - (20 - i) * 3_600_000, amount=35.0 + i) for i in range(20)]
    attack = [txn(100 + i, ts_ms=T0 + i * 8_000, amount=1.2 + i / 10, device_id="dnew", ip_country="BR",
                  merchant_category="digital_goods") for i in range(8)]  # fmt: skip
    results = scorer.score(events(history + attack))
    scores = scores_of(results)
    normal, burst = scores[5:20], scores[20:]
    assert max(s.probability for s in normal) < settings.review_threshold
    assert burst[-1].decision == "decline"
    assert burst[-1].reasons, "a decline carries reason codes"


def test_reasons_point_at_the_feature_that_was_pushed(sim_like: list[Transaction]) -> None:
    scorer = FraudScorer(FraudSettings(models_dir=MODELS, execution_providers=["cpu"]))
    scorer.load(LoadContext(settings=scorer.settings))
    loaded = scorer.slot.current
    numeric, categorical = replay([from_transaction(t) for t in sim_like])
    p = probabilities(loaded, numeric, categorical)
    assert p.shape == (len(sim_like),) and np.all((p >= 0) & (p <= 1))
    why = reasons(loaded, numeric, categorical, p, max_reasons=3, min_delta=0.0)
    assert all(len(r) <= 3 for r in why)
    assert {code for r in why for code in r} <= {g[0] for g in GROUPS}
    assert len(numeric[0]) == len(NUMERIC_FEATURES) and len(categorical[0]) == len(CATEGORICAL_FEATURES)


@pytest.fixture
def sim_like() -> list[Transaction]:
    return [txn(i, user=f"u{i % 7}", ts_ms=T0 + i * 20_000, amount=10.0 + 37 * (i % 5)) for i in range(60)]


@pytest.mark.train
def test_export_parity_of_a_tiny_fraud_net(tmp_path: Path) -> None:
    import torch

    from export.convert import export_onnx
    from export.fraud.model import make_mlp
    from export.parity import check_parity
    from export.spec import ExportSpec

    torch.manual_seed(0)
    model = make_mlp(len(NUMERIC_FEATURES)).eval()
    rng = np.random.default_rng(0)

    def samples(batch: int, g: np.random.Generator) -> dict[str, np.ndarray]:
        return {"numeric": g.normal(size=(batch, len(NUMERIC_FEATURES))).astype(np.float32),
                "categorical": g.integers(0, 8, (batch, len(CATEGORICAL_FEATURES))).astype(np.int64)}  # fmt: skip

    spec = ExportSpec(name="fraud", inputs=tuple(INPUTS), outputs=tuple(OUTPUTS), sample_inputs=samples, atol=1e-5)
    path = tmp_path / "model.onnx"
    export_onnx(model, spec, path)
    parity = check_parity(model, path, spec, [samples(n, rng) for n in (1, 7, 64)])
    assert parity.passed and parity.max_abs_diff["probability"] < 1e-5
