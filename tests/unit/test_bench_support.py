"""The support benchmark on a tiny fine-tuned BERT (the real export path, --tiny): the model limit
over real messages padded per batch, its variants, torch eager per message from the version's
checkpoint, the report's ratio against the served variant, and a GPU suite that says plainly when
there is no GPU. Figures here are smoke figures; the real ones come from ``shopstream bench``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.errors import ModelError
from shared.models.repository import ModelRepository
from tests.support.support_model import write_base, write_data
from tests.support.tiny_support_model import publish_tiny_support
from tools.bench import gpu, orchestrate
from tools.bench.gpu import CPU, Plan, Sweep
from tools.bench.model_limit import (
    BATCH_SIZES,
    BatchPoint,
    ModelLimit,
    capture,
    measure_model_limits,
    model_variants,
    swept,
)
from tools.bench.report import LIMIT_RATIO, format_service, format_summary, ratios
from tools.bench.scoring import CapturedFeeds
from tools.bench.service import ServiceBenchConfig, ServiceReport
from tools.bench.text import padding_share
from tools.bench.torch_eager import PROVIDER, load_module, measure_torch_eager

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny support version exported as the real one is (checkpoint, fp16 and int8), served to the bench."""
    import torch

    from export.cli import run_export

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bench-support")
    base, data = write_base(root / "base"), write_data(root / "data")
    assert run_export(["support", "--quiet", "--data", str(data), "--models-dir", str(root / "models"), "--tiny",
                       "--epochs", "1", "--set", f"base={base}"]) == 0
    with pytest.MonkeyPatch.context() as patch:
        for module in ("model_limit", "scoring", "torch_eager"):
            patch.setattr(f"tools.bench.{module}.MODELS_DIR", root / "models")
        yield root / "models"


@pytest.fixture(scope="module")
def captured(models: Path) -> CapturedFeeds:
    return capture("support", events=300)


def test_each_micro_batch_is_run_as_the_service_runs_it_in_length_groups_padded_to_their_longest(
        captured: CapturedFeeds) -> None:
    assert captured.batches is not None
    calls = captured.batches(64, CPU)
    assert sum(len(c["input_ids"]) for c in calls) == 256  # the sample, whatever the batch size
    assert all(c["input_ids"].shape == c["attention_mask"].shape for c in calls)
    assert all(int(c["attention_mask"].sum(axis=1).max()) == c["input_ids"].shape[1] for c in calls)
    assert 4 <= len(calls) < 64  # four micro-batches of 64, each in a few length groups
    one_call_each = captured.batches(64, "CUDAExecutionProvider")  # a GPU call costs more than padding
    assert len(one_call_each) <= len(calls) and padding_share(calls) <= padding_share(one_call_each)
    singles = captured.batches(1, CPU)
    assert len(singles) == 256 and all(int(c["attention_mask"].min()) == 1 for c in singles)  # no padding
    assert len(captured.batches(1024, CPU)[0]["input_ids"]) <= 256  # the service's max rows per call
    assert captured.max_batch == 256 and swept(captured, BATCH_SIZES)[-1] == 256  # it never runs a larger one


def test_model_limit_sweeps_every_variant_at_one_thread_and_all_cores(captured: CapturedFeeds) -> None:
    variants = model_variants("support", "all")
    assert variants == ("fp32", "fp16", "int8")
    limits = measure_model_limits("support", repeats=1, min_s=0.01, captured=captured, variants=variants,
                                  batch_sizes=(1, 8, 32))
    threads = (1, os.cpu_count()) if (os.cpu_count() or 1) > 1 else (1,)
    assert [(m.variant, m.threads) for m in limits] == [(v, t) for v in variants for t in threads]
    for limit in limits:
        assert [p.batch for p in limit.points] == [1, 8, 32] and limit.events_per_s > 0  # bounded: no early stop
        assert limit.model == "support" and limit.version == "v0001"


def test_the_gpu_sweep_path_times_the_same_text_batches_through_io_binding(captured: CapturedFeeds,
                                                                           models: Path) -> None:
    repo = ModelRepository(models)
    fp16 = repo.load_verified("support", "v0001", "fp16")[1]
    sweep = Sweep("support", "support", "v0001", "fp16", [CPU], [], 1, True, 1.0)
    gpu._measure_one(sweep, fp16, captured, Plan((1, 8), repeats=1, min_s=0.01, deadline=float("inf")),
                     deadline=float("inf"))
    assert sweep.session_providers == [CPU] and [p["batch"] for p in sweep.points] == [1, 8]
    assert sweep.events_per_s > 0


def test_torch_eager_runs_the_versions_checkpoint_one_message_at_a_time(captured: CapturedFeeds) -> None:
    (eager,) = measure_torch_eager("support", captured, repeats=1, min_s=0.01, messages=16, threads=(1,))
    assert eager.provider == PROVIDER and eager.threads == 1
    assert [p.batch for p in eager.points] == [1] and eager.events_per_s > 0


def test_a_version_without_a_torch_checkpoint_cannot_run_eagerly(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    publish_tiny_support(repo)
    with pytest.raises(ModelError, match="no torch checkpoint"):
        load_module(repo, "support", "v0001")


def _limit(variant: str, threads: int, events: float, provider: str = "CPUExecutionProvider") -> ModelLimit:
    return ModelLimit("support", "support", "v0001", provider, variant, 1.0,
                      [BatchPoint(1 if provider == PROVIDER else 64, [events] * 3)], threads, threads == 2)


def test_the_ratio_is_against_the_served_variant_and_torch_eager_is_reported_beside_it() -> None:
    report = ServiceReport("support", ServiceBenchConfig(variants=("fp32", "int8")))
    report.models = [_limit("fp32", 1, 300.0), _limit("fp32", 2, 500.0), _limit("int8", 2, 900.0)]
    report.eager = [_limit("fp32", 1, 40.0, PROVIDER), _limit("fp32", 2, 50.0, PROVIDER)]
    report.runs = {"io-limit": [], "shopstream": []}
    report.median = lambda name: {"shopstream": 450.0, "io-limit": 20_000.0}.get(name, float("nan"))  # type: ignore[method-assign]
    by_name = {r.name: r for r in ratios(report)}
    assert by_name[LIMIT_RATIO].value == pytest.approx(0.9) and by_name[LIMIT_RATIO].met  # 450 / 500, not / 900
    assert by_name["shopstream / torch eager per message"].value == pytest.approx(9.0)
    text = format_service(report)
    assert "| model limit int8, 2 threads (all cores), batch 64 | 900 ± 0 |" in text
    assert "| torch eager per message, 1 thread | 40 ± 0 |" in text
    assert "| support | 300 (64) | 500 (64) |" in format_summary([report])


def test_bench_gpu_without_a_gpu_says_so_and_measures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    monkeypatch.setattr("tools.bench.gpu.no_gpu_reason", lambda: "no GPU visible")
    monkeypatch.setattr("tools.bench.gpu.gpu_model_limits", lambda service: pytest.fail("measured without a GPU"))

    class Out:
        def add(self, text: str) -> None:
            said.append(text)

    args = argparse.Namespace(target="support")
    assert orchestrate.suite_gpu(args, Out(), Path("/tmp")) == 2
    assert said == ["No GPU here: no GPU visible. GPU figures for support are pending until this runs on a GPU "
                    "host; nothing was measured."]
