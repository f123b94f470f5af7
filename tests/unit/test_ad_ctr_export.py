"""The ad_ctr recipe end to end at tiny size: two graphs, parity, pairing, fine-tune, serve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.train


def test_tiny_export_then_fine_tune_publishes_paired_graphs_the_scorer_serves(tmp_path: Path) -> None:
    from export.ad_ctr.recipe import RECIPE
    from export.pipeline import export_and_publish
    from export.registry import RecipeArgs
    from services.ad_ctr.scorer import AdCtrScorer
    from services.ad_ctr.settings import AdCtrSettings
    from shared.models.repository import ModelRepository
    from shared.runtime.scorer import Event, LoadContext, Scored
    from shared.schemas.ads import AdRequest, CtrScores
    from sim.registry import make_stream

    repo = ModelRepository(tmp_path)
    first = export_and_publish(RECIPE.train(RecipeArgs(models_dir=tmp_path, tiny=True, variants=())), repo)
    second = export_and_publish(
        RECIPE.train(RecipeArgs(models_dir=tmp_path, tiny=True, variants=(), from_version=first.version)), repo)
    assert (first.version, second.version) == ("v0001", "v0002")
    assert second.training.from_version == "v0001"
    assert second.parity is not None and second.parity.passed
    text = second.preprocessing["text_encoder"]
    assert text["version"] == "v0002" and text["sha256"] == repo.get("ad_ctr_text", "v0002").sha256
    assert second.preprocessing["calibration"]["a"] > 0.0

    settings = AdCtrSettings(models_dir=tmp_path, execution_providers=["cpu"])
    scorer = AdCtrScorer(settings)
    scorer.load(LoadContext(settings=settings))
    reqs = [AdRequest.model_validate(event) for event, _ in make_stream("ads").iter_dicts(5)]
    results = scorer.score([Event(r, r.request_id, "t", 0, i, r.ts_ms) for i, r in enumerate(reqs)])
    assert scorer.model_info.version == "v0002"
    values = [r.outputs[0].value for r in results if isinstance(r, Scored)]
    scores = [CtrScores.model_validate_json(v) for v in values if isinstance(v, bytes)]
    pctr = np.array([c.pctr for s in scores for c in s.candidates])
    assert len(pctr) == sum(len(r.candidates) for r in reqs) and bool(((pctr > 0) & (pctr < 1)).all())
