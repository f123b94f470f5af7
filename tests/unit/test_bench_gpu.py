"""The unattended GPU benchmark (tools/bench/gpu.py, scripts/bench_gpu.sh), checked on the CPU:
library discovery, TensorRT options, node placement from ORT's own records, the deadline-bound
sweep, the report, and the script's QUICK smoke mode end to end. The GPU figures themselves need
a GPU host (docs/benchmarks.md, "GPU")."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from shared.models.repository import ModelRepository
from tools.bench import gpu
from tools.bench.gpu import CPU, CUDA, TRT, Plan, Sweep
from tools.bench.model_limit import capture
from tools.bench.record_set import RecordSet
from tools.bench.scoring import CapturedFeeds
from tools.bench.wiring import MODELS_DIR
from tools.supervisor import REPO_ROOT


@pytest.fixture(scope="module")
def fraud_model() -> bytes:
    repo = ModelRepository(MODELS_DIR)
    return repo.load_verified("fraud", repo.resolve("fraud"), None)[1]


@pytest.fixture(scope="module")
def fraud_captured() -> CapturedFeeds:
    return capture("fraud", events=300)


@pytest.fixture(scope="module")
def fraud_feeds(fraud_captured: CapturedFeeds) -> dict[str, np.ndarray]:
    return dict(fraud_captured.feeds)


def test_nvidia_lib_dirs_finds_package_libraries_in_path_order_once(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, lib in [(first / "nvidia" / "cu13" / "lib", "libcudart.so.13"),
                        (first / "nvidia" / "cudnn" / "lib", "libcudnn.so.9"),
                        (second / "tensorrt_libs", "libnvinfer.so.10")]:
        folder.mkdir(parents=True)
        (folder / lib).write_bytes(b"")
    (first / "nvidia" / "empty" / "lib").mkdir(parents=True)  # no libraries: not worth a search path
    dirs = gpu.nvidia_lib_dirs([str(first), str(tmp_path / "missing"), str(second), str(first)])
    assert dirs == [str(first / "nvidia" / "cu13" / "lib"), str(first / "nvidia" / "cudnn" / "lib"),
                    str(second / "tensorrt_libs")]


def test_tensorrt_gets_an_engine_cache_and_one_explicit_profile(tmp_path: Path) -> None:
    feeds = {"numeric": np.zeros((256, 17), np.float32), "table": np.zeros((5, 3), np.float32)}
    options = gpu.tensorrt_options(feeds, {"numeric"}, tmp_path, max_batch=4096)
    assert options["trt_engine_cache_enable"] is True and options["trt_engine_cache_path"] == str(tmp_path)
    assert options["trt_timing_cache_enable"] is True
    assert options["trt_profile_min_shapes"] == "numeric:1x17,table:5x3"
    assert options["trt_profile_opt_shapes"] == options["trt_profile_max_shapes"] == "numeric:4096x17,table:5x3"
    assert gpu.provider_entries([TRT, CUDA, CPU], options) == [(TRT, options), (CUDA, {"device_id": 0}), CPU]


def test_the_plan_measures_each_gpu_chain_in_both_variants_then_the_cpu_at_each_thread_count() -> None:
    everything = gpu.measurements([TRT, CUDA, CPU], True, (1, 16))
    assert [(c[0], v, t, io) for c, v, t, io in everything] == [
        (TRT, "fp32", 0, True), (TRT, "fp16", 0, True), (CUDA, "fp32", 0, True), (CUDA, "fp16", 0, True),
        (CPU, "fp32", 1, False), (CPU, "fp32", 16, False)]
    assert [c[0] for c, *_ in gpu.measurements([TRT, CUDA, CPU], False, (1,))] == [CUDA, CUDA, CPU]
    assert gpu.measurements([CPU], True, (1, 2)) == [([CPU], "fp32", 1, False), ([CPU], "fp32", 2, False)]


def test_profiled_kernels_count_per_provider_and_name_what_left_the_first_one() -> None:
    def node(op: str, provider: str) -> dict[str, Any]:
        return {"cat": "Node", "name": f"{op}_kernel_time", "args": {"op_name": op, "provider": provider}}

    events = [node("Gemm", CUDA), node("Gemm", CUDA), node("MemcpyToHost", CUDA), node("Gather", CPU),
              node("Gather", CPU), {"cat": "Session", "name": "model_run", "args": {}}]
    placement = gpu.profiled_kernels(events, CUDA)
    assert placement.ran == {CUDA: 3, CPU: 2}
    assert placement.off_first == {"CPU: Gather": 2}
    assert placement.copies == 1


def test_node_placement_reads_the_real_session(fraud_model: bytes, fraud_feeds: dict[str, np.ndarray]) -> None:
    placement = gpu.node_placement(fraud_model, [CPU], fraud_feeds, threads=1)
    assert set(placement.ran) == {CPU} and placement.ran[CPU] > 5
    assert set(placement.assigned) == {CPU} and placement.assigned[CPU] >= placement.ran[CPU]
    assert placement.off_first == {} and placement.copies == 0


class FakeTimer:
    """rows/s = 1000 * batch up to batch 64, flat after; each call 'takes' batch / 1000 s of a fake clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.batches: list[int] = []

    def run(self, feeds: dict[str, np.ndarray]) -> None:
        self.now += len(next(iter(feeds.values()))) / 1000

    provider = CPU

    def prepare(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return feeds

    def rows_per_s(self, batches: list[dict[str, np.ndarray]], min_s: float) -> tuple[float, float]:
        batch = sum(len(next(iter(feeds.values()))) for feeds in batches)
        self.batches.append(batch)
        self.now += max(min_s, batch / 1000)
        return 1000.0 * min(batch, 64), batch / 1000


def _captured(feeds: dict[str, np.ndarray]) -> CapturedFeeds:
    return CapturedFeeds("x", feeds, 1.0, RecordSet([()]))


def test_the_sweep_stops_where_the_curve_flattens() -> None:
    timer = FakeTimer()
    points, stopped = gpu.run_sweep(timer, _captured({"x": np.zeros((4, 2))}), {"x"}, [2**i for i in range(17)],  # type: ignore[arg-type]
                                    repeats=1, min_s=0.01, deadline=1e9, clock=lambda: timer.now)
    assert [p["batch"] for p in points] == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert stopped == ""


def test_the_sweep_does_not_start_a_point_it_cannot_finish_before_the_deadline() -> None:
    timer = FakeTimer()
    points, stopped = gpu.run_sweep(timer, _captured({"x": np.zeros((4, 2))}), {"x"}, [1, 10, 100, 1000, 10000],  # type: ignore[arg-type]
                                    repeats=2, min_s=0.01, deadline=3.0, clock=lambda: timer.now)
    assert [p["batch"] for p in points] == [1, 10, 100]
    assert stopped == "time budget: batch 1,000 not measured"
    assert timer.now < 3.0


def test_the_gpu_measurement_path_runs_on_the_cpu_with_io_binding_and_the_fp16_model(
        fraud_model: bytes, fraud_captured: CapturedFeeds) -> None:
    repo = ModelRepository(MODELS_DIR)
    fp16 = repo.load_verified("fraud", repo.resolve("fraud"), "fp16")[1]
    sweep = Sweep("fraud", "fraud", "v0001", "fp16", [CPU], [], 1, True, 1.0)
    plan = Plan((1, 8), repeats=1, min_s=0.01, deadline=float("inf"))
    gpu._measure_one(sweep, fp16, fraud_captured, plan, deadline=float("inf"))
    assert sweep.session_providers == [CPU]
    assert [p["batch"] for p in sweep.points] == [1, 8] and sweep.events_per_s > 0
    assert sweep.placement is not None and sweep.placement.ran.get(CPU, 0) > 0
    assert Sweep.from_json(dataclasses.asdict(sweep)) == sweep


def _sweep(variant: str, chain: list[str], events: float, threads: int = 0) -> dict[str, object]:
    s = Sweep("fraud", "fraud", "v0001", variant, chain, chain, threads, chain[0] != CPU, 2.0,
              points=[{"batch": 64, "rows_per_s": [events * 2.0] * 3}],
              placement=gpu.Placement({chain[0]: 10, CPU: 2}, {chain[0]: 9, CPU: 2}, {"CPU: Gather": 2}, 1))
    return dataclasses.asdict(s)


def test_the_report_gives_placement_limits_and_the_gpu_cpu_ratio() -> None:
    env = {"gpus": [{"name": "NVIDIA H200", "memory": "143771 MiB", "driver": "580.159.03",
                     "compute_capability": "9.0"}], "driver_cuda": "13.0", "runtime_cuda": "13.0", "cudnn": "9.13.0",
           "ort": {"package": "onnxruntime-gpu", "version": "1.31.1", "cuda": "13.0", "location": "/x"},
           "available": [TRT, CUDA, CPU], "usable": [CUDA, CPU],
           "problems": {TRT: "libnvinfer.so.10: cannot open shared object file"},
           "preload": {"called": True, "printed": "", "error": ""}, "libraries": ["/s/nvidia/cu13/lib/libcudart.so.13"]}
    part = {"sweeps": [_sweep("fp32", [CUDA, CPU], 400_000), _sweep("fp16", [CUDA, CPU], 500_000),
                       _sweep("fp32", [CPU], 100_000, 1), _sweep("fp32", [CPU], 125_000, 16)]}
    text = gpu.build_report(env, [part], [["limits-fraud", "ok", "40", "90", ""]], title="t")
    assert "NVIDIA H200, 143771 MiB, driver 580.159.03" in text
    assert "CUDA: driver API 13.0, runtime 13.0, cuDNN 9.13.0" in text
    assert "onnxruntime-gpu 1.31.1 built for CUDA 13.0" in text
    assert "TensorRT: left out, its provider does not load here: libnvinfer.so.10" in text
    assert ("| fraud | fraud v0001 | CUDA→CPU fp16 | CUDA, CPU | CUDA 10, CPU 2 | CUDA 9, CPU 2 | CPU: Gather x2 | 1 |"
            in text)
    # best GPU 500k (fp16) / best CPU 125k (16 threads) = 4.00; fp32 400k / 125k = 3.20
    assert "| 4.00 | 3.20 |" in text
    assert "No GPU provider ran here" not in text
    assert "| limits-fraud | ok | 40 | 90 |  |" in text


def test_a_cpu_only_report_says_so_in_bold() -> None:
    text = gpu.build_report(None, [{"sweeps": [_sweep("fp32", [CPU], 1000, 1)]}], [], title="t")
    assert "**No GPU provider ran here" in text
    assert "the environment step did not finish" in text


@pytest.mark.slow
def test_the_script_quick_mode_runs_model_limits_only_on_the_cpu(tmp_path: Path) -> None:
    report, work = tmp_path / "bench-gpu.md", tmp_path / "work"
    env = {**os.environ, "QUICK": "1", "PYTHON": sys.executable, "REPORT": str(report), "WORK": str(work),
           "BUDGET_S": "90"}
    env.pop("BOOTSTRAP", None)
    result = subprocess.run(["bash", "scripts/bench_gpu.sh"], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = report.read_text()
    assert "(QUICK smoke run)" in text
    assert f"- onnxruntime: {gpu.ort_build()['package']} {ort.__version__}" in text
    assert "- GPU: " in text and "- CUDA: driver API " in text and "- onnxruntime.preload_dlls(): " in text
    assert "- TensorRT: " in text
    # the provider of each node, from the real session: fraud's graph on the CPU here
    placement = [line for line in text.splitlines() if line.startswith("| fraud | fraud ")]
    assert placement and "| CPU fp32, 1 thread | CPU | CPU " in placement[0], text
    assert "| limits-fraud | ok |" in text and "| env | ok |" in text
    assert "| service | skipped |" in text  # model-limit-only: no broker in QUICK mode
    if gpu.provider_chains() == [("cpu",)]:
        assert "**No GPU provider ran here" in text


@pytest.mark.slow
def test_a_step_that_hangs_is_cut_by_its_timeout_and_the_report_still_comes(tmp_path: Path) -> None:
    hang = tmp_path / "python"  # the real interpreter, except that the sweep step hangs
    hang.write_text('#!/bin/sh\ncase "$*" in *"tools.bench.gpu limits "*) exec sleep 300;; esac\n'
                    f'exec "{sys.executable}" "$@"\n')
    hang.chmod(0o755)
    report = tmp_path / "bench-gpu.md"
    env = {**os.environ, "QUICK": "1", "PYTHON": str(hang), "REPORT": str(report), "WORK": str(tmp_path / "work"),
           "BUDGET_S": "90", "SERVICE_S": "6"}
    result = subprocess.run(["bash", "scripts/bench_gpu.sh"], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    text = report.read_text()
    assert "| limits-fraud | timed out | 6 | 6 |" in text
    assert "| env | ok |" in text and "- GPU: " in text
