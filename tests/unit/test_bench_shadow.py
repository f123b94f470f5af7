"""The shadow benchmark's pure parts: the temporary repository, what it reads off a service, its report."""

from __future__ import annotations

import math
from pathlib import Path

from shared.models import ModelRepository
from tests.support.models import publish_linear
from tools.bench.latency import LatencyResult
from tools.bench.report import format_shadow, shadow_lines
from tools.bench.shadow import (
    PLAIN,
    SHADOW,
    Memory,
    ShadowBenchConfig,
    ShadowReport,
    ShadowRepository,
    TwinRun,
    candidate_events,
    companion_models,
    mean_batch,
    metric_samples,
    parse_memory,
    per_event_us,
    shadow_active,
    shadow_repository,
)


def _with_encoder(source: Path) -> None:
    """``ctr`` v0001 and v0002 whose manifests name the text encoder ``enc`` v0001, as ad_ctr's do."""
    repo = ModelRepository(source)
    encoder = publish_linear(repo, "enc", seed=3)
    publish_linear(repo, "other", seed=4)
    for seed in (1, 2):
        base = publish_linear(repo, "ctr", seed=seed)
        folder = repo.path("ctr", base.version)
        manifest = base.model_copy(update={"preprocessing": {
            "text_encoder": {"name": "enc", "version": encoder.version, "sha256": encoder.sha256}, "seed": seed}})
        manifest.save(folder / "manifest.json")


def test_companions_are_the_models_a_manifest_names_in_its_preprocessing(tmp_path: Path) -> None:
    _with_encoder(tmp_path)
    repo = ModelRepository(tmp_path)
    manifest = repo.get("ctr", "v0001")
    assert companion_models(manifest, repo.names()) == ["enc"]
    assert companion_models(manifest, ["ctr", "other"]) == []  # not in the repository: nothing to copy
    assert companion_models(repo.get("enc", "v0001"), repo.names()) == []


def test_the_candidate_is_a_byte_for_byte_copy_of_the_live_version_under_a_new_name(tmp_path: Path) -> None:
    source, dest = tmp_path / "models", tmp_path / "shadow"
    _with_encoder(source)
    before = sorted(str(p.relative_to(source)) for p in source.rglob("*"))

    made = shadow_repository("ctr", dest, source)

    assert made == ShadowRepository(dest, "ctr", "v0002", "v0003", ("ctr", "enc"))
    repo = ModelRepository(dest)
    assert repo.names() == ["ctr", "enc"]  # the unrelated model stays behind
    assert repo.versions("ctr") == ["v0001", "v0002", "v0003"]
    live, copy = repo.verify("ctr", "v0002"), repo.verify("ctr", "v0003")
    assert copy.model_dump(exclude={"version"}) == live.model_dump(exclude={"version"})
    assert (dest / "ctr/v0003/model.onnx").read_bytes() == (source / "ctr/v0002/model.onnx").read_bytes()
    assert sorted(str(p.relative_to(source)) for p in source.rglob("*")) == before  # the real one untouched


def test_a_pinned_live_version_is_the_one_copied(tmp_path: Path) -> None:
    source = tmp_path / "models"
    _with_encoder(source)
    made = shadow_repository("ctr", tmp_path / "shadow", source, live="v0001")
    assert (made.live, made.candidate) == ("v0001", "v0003")
    repo = ModelRepository(tmp_path / "shadow")
    assert repo.get("ctr", "v0003").sha256 == repo.get("ctr", "v0001").sha256


METRICS = """\
# HELP shopstream_rollout_share Share of events a candidate scores
# TYPE shopstream_rollout_share gauge
shopstream_rollout_share{service="fraud",mode="shadow",candidate="v0002"} 1.0
# TYPE shopstream_rollout_events_total counter
shopstream_rollout_events_total{service="fraud",mode="shadow",candidate="v0002"} 19968.0
shopstream_rollout_events_total{service="ad_ctr",mode="shadow",candidate="v0002"} 5.0
shopstream_shadow_inference_seconds_bucket{service="fraud",candidate="v0002",le="0.005"} 10.0
shopstream_shadow_inference_seconds_count{service="fraud",candidate="v0002"} 80.0
shopstream_shadow_inference_seconds_sum{service="fraud",candidate="v0002"} 0.4
shopstream_inference_seconds_sum{service="fraud",model_version="v0001"} 1.0
shopstream_batch_size_count{service="fraud"} 80.0
shopstream_batch_size_sum{service="fraud"} 20000.0
"""


def test_what_the_benchmark_reads_off_the_service_metrics() -> None:
    assert metric_samples(METRICS, "shopstream_rollout_events_total") == [19968.0, 5.0]
    assert metric_samples(METRICS, "shopstream_rollout_events_total", service="ad_ctr") == [5.0]
    assert shadow_active(METRICS, "fraud")
    assert not shadow_active(METRICS, "ad_ctr")  # no share series: no candidate serves yet
    canary = METRICS.replace('mode="shadow"', 'mode="canary"')
    assert not shadow_active(canary, "fraud")
    assert candidate_events(METRICS, "fraud") == 19968.0
    assert math.isnan(candidate_events("", "fraud"))
    assert math.isclose(per_event_us(METRICS, "fraud", "shopstream_shadow_inference_seconds"), 20.0)
    assert math.isclose(per_event_us(METRICS, "fraud", "shopstream_inference_seconds"), 50.0)
    assert math.isnan(per_event_us("", "fraud", "shopstream_inference_seconds"))
    assert mean_batch(METRICS, "fraud") == 250.0
    assert math.isnan(mean_batch("", "fraud"))


def test_memory_from_proc_status() -> None:
    status = "Name:\tpython\nVmPeak:\t 900000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  153600 kB\nThreads:\t12\n"
    assert parse_memory(status) == Memory(150.0, 200.0)
    assert parse_memory("Name:\tzombie\n") == Memory(0.0, 0.0)


def _twin(name: str, rate: float, loaded: float, peak: float, covered: float = math.nan) -> TwinRun:
    shadowed = name == SHADOW
    return TwinRun(name, 10_000, rate, 1.0, Memory(loaded, peak - 10), Memory(peak - 5, peak), 0.5,
                   scorer_us=90.0 if shadowed else 40.0, candidate_us=45.0 if shadowed else math.nan,
                   batch=256.0 if shadowed else 128.0, candidate_events=covered)


def _report() -> ShadowReport:
    report = ShadowReport("fraud", ShadowBenchConfig(events=10_000, repeats=3),
                          ShadowRepository(Path("/tmp/x"), "fraud", "v0001", "v0002", ("fraud",)), load=[1.0, 1.5])
    report.runs = {PLAIN: [_twin(PLAIN, r, 120, 150) for r in (20_000, 22_000, 21_000)],
                   SHADOW: [_twin(SHADOW, r, 126, 170, 10_000) for r in (10_000, 11_000, 10_500)]}
    report.latency = [LatencyResult(0.5, 10_500, 10_400, 80_000, 15, 24, 38, PLAIN),
                      LatencyResult(0.5, 10_500, 10_450, 80_000, 400, 900, 1_200, SHADOW)]
    return report


def test_shadow_lines_compare_the_twins() -> None:
    lines = shadow_lines(_report())
    assert lines[0] == "- shopstream + shadow / shopstream (throughput at saturation) = **0.50**"
    assert lines[1] == "- CPU per event, shopstream + shadow / shopstream = **1.00**"
    assert lines[2] == ("- memory of the shadow: RSS once loaded +6 MB, RSS after the run +20 MB, peak RSS +20 MB "
                        "(medians, shadow twin minus plain twin)")
    assert lines[3] == "- events the candidate scored, per run: 10,000 of 10,000, 10,000 of 10,000, 10,000 of 10,000"
    assert lines[4] == ("- scorer time per event (the runtime's `shopstream_inference_seconds` over the events): "
                        "40.0 µs plain, 90.0 µs with the shadow, of which the candidate's pass 45.0 µs; "
                        "micro-batches of 128 and 256 events on average")
    assert lines[5].startswith("- writing the input took 0.5 s per run")


def test_format_shadow_puts_the_twins_and_their_latency_side_by_side() -> None:
    text = format_shadow(_report())
    assert text.startswith("### The cost of a shadow: fraud\n")
    assert "shadow candidate v0002 (a byte-for-byte copy of v0001; model folders copied: fraud)" in text
    assert "| shopstream | 21,000 ± 1,000 | 0.100 | 120 | 145 | 150 | 3 |" in text
    assert "| shopstream + shadow | 10,500 ± 500 | 0.100 | 126 | 165 | 170 | 3 |" in text
    assert "| shopstream | 50% | 10,500 | 10,400 | 15 | 24 | 38 |" in text
    assert "| shopstream + shadow | 50% | 10,500 | 10,450 | 400 | 900 | 1200 |" in text


def test_a_twin_that_did_not_run_reads_as_not_measured() -> None:
    report = _report()
    del report.runs[SHADOW]
    report.skipped[SHADOW] = "TimeoutError: the shadow candidate did not serve"
    text = format_shadow(report)
    assert "| shopstream + shadow | n/a | | | | | |" in text
    assert "= **n/a**" in text
    assert "- shopstream + shadow not measured: TimeoutError" in text
    assert "events the candidate scored" not in text
