"""ModelScorer: the documented minimal scorer loads, scores, reports to the runtime's metrics and hot-swaps.

The scorer under test is the example in docs/models.md, run from the doc itself, so the doc
stays true.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.errors import ModelError, ModelSpecMismatch
from shared.models import ModelManifest, ModelRepository
from shared.runtime.metrics import RuntimeMetrics
from shared.runtime.model_scorer import ModelScorer
from shared.runtime.scorer import Event, LoadContext, Scored
from tests.support.doc_scorer import EXAMPLE
from tests.support.models import publish_linear


def make(tmp_path: Path) -> ModelScorer[Any, Any]:
    settings = EXAMPLE["LinearSettings"](models_dir=tmp_path, execution_providers=["cpu"], model_poll_interval_s=0.01)
    scorer = EXAMPLE["LinearScorer"](settings)
    assert isinstance(scorer, ModelScorer)
    return scorer


def batch(n: int = 3) -> list[Event[Any]]:
    features = EXAMPLE["Features"]
    return [Event(features(id=f"e{i}", x=[i, 1.0, -1.0, 0.5]), f"e{i}", "in", 0, i, 0) for i in range(n)]


def scores(scorer: ModelScorer[Any, Any]) -> list[tuple[float, str]]:
    out = []
    for result in scorer.score(batch()):
        assert isinstance(result, Scored)
        value = result.outputs[0].value
        assert not isinstance(value, bytes)  # the docs' example builds its outputs as models
        out.append((value.score, value.model_version))  # type: ignore[attr-defined]
    return out


def info_gauge(metrics: RuntimeMetrics, manifest: ModelManifest) -> float | None:
    labels = {"service": "svc", "model": "linear", "model_version": manifest.version,
              "sha256": manifest.sha256[:12], "provider": "CPUExecutionProvider"}  # fmt: skip
    return metrics.registry.get_sample_value("shopstream_model_info", labels)


def swap_until(scorer: ModelScorer[Any, Any], done: Any, timeout_s: float = 30.0) -> None:
    """Call ``between_batches`` as the runtime does until ``done()`` (the new version loads in a thread)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "no swap within the timeout"
        time.sleep(0.02)
        scorer.between_batches()


def test_documented_scorer_serves_swaps_and_reports_to_the_runtime_metrics(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    v1 = publish_linear(repo, seed=1)
    scorer, metrics = make(tmp_path), RuntimeMetrics("svc")
    assert scorer.model_info.version == "0", "nothing serves before load()"
    scorer.load(LoadContext(settings=scorer.settings, model_metrics=metrics))
    assert scorer.model_info.version == "v0001" and scorer.model_info.sha256 == v1.sha256
    assert info_gauge(metrics, v1) == 1.0
    first = scores(scorer)
    assert {v for _, v in first} == {"v0001"} and len({s for s, _ in first}) == 3

    publish_linear(repo, seed=2, input_name="feats")  # not the graph the scorer feeds
    swap_until(scorer, lambda: "v0002" in scorer.slot.refused)
    assert scorer.slot.refused == {"v0002": "spec"} and scores(scorer) == first
    assert metrics.registry.get_sample_value(
        "shopstream_model_load_failures_total", {"service": "svc", "reason": "spec"}) == 1.0  # fmt: skip

    v3 = publish_linear(repo, seed=3)
    swap_until(scorer, lambda: scorer.model_info.version == "v0003")
    third = scores(scorer)
    assert {v for _, v in third} == {"v0003"} and not np.allclose([s for s, _ in third], [s for s, _ in first])
    assert info_gauge(metrics, v3) == 1.0 and info_gauge(metrics, v1) is None
    scorer.close()


def test_check_manifest_hook_refuses_a_version_and_the_old_one_keeps_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def seed_one_only(manifest: ModelManifest) -> None:
        if manifest.preprocessing.get("seed") != 1:
            raise ModelSpecMismatch(f"{manifest.version} was not trained with seed 1")

    repo = ModelRepository(tmp_path)
    publish_linear(repo, seed=1)
    publish_linear(repo, seed=2)
    scorer = make(tmp_path)
    monkeypatch.setattr(scorer, "check_manifest", seed_one_only)  # what a subclass overrides
    scorer.load(LoadContext(settings=scorer.settings))
    assert scorer.model_info.version == "v0001" and scorer.slot.refused == {"v0002": "spec"}


def test_scoring_before_load_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model linear is not loaded yet"):
        make(tmp_path).score(batch())
