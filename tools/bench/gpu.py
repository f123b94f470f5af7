"""The GPU benchmark, built to run unattended: model limits on CUDA (TensorRT when it loads) beside
the same sweep on the same host's CPU, where each node of each graph ran, and the versions.

``scripts/bench_gpu.sh`` drives it one step per process, each under ``timeout`` and a total budget::

    python -m tools.bench.gpu libdirs                         # nvidia-* package lib dirs → LD_LIBRARY_PATH
    python -m tools.bench.gpu env --json env.json             # GPU, driver, CUDA, ORT, libraries, providers
    python -m tools.bench.gpu limits fraud --json fraud.json --deadline-s 90   # sweeps + node placement
    python -m tools.bench.gpu service fraud --out service.md  # end to end through Kafka (needs Java)
    python -m tools.bench.gpu report env.json fraud.json --steps steps.tsv --out bench-gpu.md

Where no GPU provider loads, the same code measures the CPU alone (the smoke mode): every figure
names the providers its session really had and the provider each node ran on, so a CPU
fallback can never pass for a GPU figure.

Node placement comes from ONNX Runtime itself, twice: the graph assignment it records when
``session.record_ep_graph_assignment_info`` is set (every node of the partitioned graph and the
provider that took it) and the profile of one run (``enable_profiling``: each kernel that really
executed, with its ``provider``; copies between host and device show up as ``Memcpy*`` kernels).

TensorRT, when its libraries load (``libnvinfer``), is measured with an engine cache and one
explicit shape profile per model (1 .. ``TRT_MAX_BATCH`` rows, other axes as the service's own
tensors), so one engine is built per model and reused for every batch size and every later run.
Where it does not load it is left out and the report says why.

Heavy imports (ONNX Runtime, the services) are inside the functions, so ``libdirs`` runs before
any CUDA library is loaded.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import glob
import io
import json
import logging
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime as ort

    from shared.settings import KafkaSettings
    from tools.bench.model_limit import BatchPoint, ModelLimit
    from tools.bench.scoring import CapturedFeeds

logger = logging.getLogger(__name__)

TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
GPU_VARIANTS = ("fp32", "fp16")
TRT_MAX_BATCH = 4096
"""The TensorRT profile's largest batch: one engine per model covers 1 .. this many rows."""
QUICK_BATCHES = (1, 16, 256)
CUDA_LIBRARY_WORDS = ("libcuda.", "cudart", "cublas", "curand", "cufft", "nvrtc", "cudnn", "nvinfer", "nvonnxparser",
                      "nvjitlink")
PACKAGES = ("onnxruntime-gpu", "onnxruntime", "numpy", "torch", "tensorrt", "tensorrt-cu13", "tensorrt-cu12",
            "nvidia-cuda-runtime", "nvidia-cublas", "nvidia-curand", "nvidia-cufft", "nvidia-cuda-nvrtc",
            "nvidia-nvjitlink", "nvidia-cudnn-cu13", "nvidia-cuda-runtime-cu12", "nvidia-cudnn-cu12")


# --- CUDA libraries from the nvidia-* Python packages -------------------------------------------

def nvidia_lib_dirs(paths: Iterable[str] | None = None) -> list[str]:
    """Folders holding shared libraries of the nvidia-* (and tensorrt) Python packages on ``paths``
    (default ``sys.path``), in path order, each once: ``nvidia/cu13/lib``, ``nvidia/cudnn/lib``,
    ``nvidia/cublas/lib`` (CUDA 12 layout), ``tensorrt_libs``..."""
    found: list[str] = []
    for base in paths if paths is not None else sys.path:
        if not base or not os.path.isdir(base):
            continue
        candidates = sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib"))) + sorted(
            glob.glob(os.path.join(base, "tensorrt*_libs")))
        for folder in candidates:
            real = os.path.realpath(folder)
            if real not in found and glob.glob(os.path.join(real, "*.so*")):
                found.append(real)
    return found


def ort_build() -> dict[str, str]:
    """The installed ONNX Runtime's package name, version and the CUDA it was built for ('' if none)."""
    import onnxruntime as ort
    from onnxruntime.capi import build_and_package_info as info

    return {"package": str(getattr(info, "package_name", "onnxruntime")), "version": ort.__version__,
            "cuda": str(getattr(info, "cuda_version", "") or ""), "location": os.path.dirname(ort.__file__)}


def preload_cuda() -> dict[str, Any]:
    """``onnxruntime.preload_dlls()`` when this ORT is a CUDA build: loads CUDA and cuDNN from the
    nvidia-* packages next to ORT, else by soname (``LD_LIBRARY_PATH``). What it printed is kept."""
    import onnxruntime as ort

    build = ort_build()
    if not build["cuda"]:
        return {"called": False, "why": f"{build['package']} {build['version']} is not a CUDA build"}
    if not hasattr(ort, "preload_dlls"):
        return {"called": False, "why": f"onnxruntime {build['version']} has no preload_dlls()"}
    printed = io.StringIO()
    error = ""
    with contextlib.redirect_stdout(printed):
        try:
            ort.preload_dlls()
        except Exception as exc:  # a bad directory raises RuntimeError; keep going without it
            error = f"{type(exc).__name__}: {exc}"
    return {"called": True, "printed": printed.getvalue().strip(), "error": error}


def loaded_cuda_libraries(maps: str = "/proc/self/maps") -> list[str]:
    """Paths of the CUDA / cuDNN / TensorRT libraries this process has mapped (where they came from)."""
    try:
        lines = Path(maps).read_text().splitlines()
    except OSError:
        return []
    paths = {line.split(maxsplit=5)[-1] for line in lines if line.count(" ") >= 5 and "/" in line}
    return sorted(p for p in paths if any(w in os.path.basename(p) for w in CUDA_LIBRARY_WORDS))


def provider_library_problem(provider: str) -> str:
    """Why ORT's shared library for ``provider`` cannot be loaded here ('' when it loads): the
    dynamic loader names the first missing dependency (``libcurand.so.10``, ``libnvinfer.so.10``...)."""
    import onnxruntime as ort

    name = {CUDA: "libonnxruntime_providers_cuda.so", TRT: "libonnxruntime_providers_tensorrt.so"}.get(provider)
    if name is None:
        return ""
    path = os.path.join(os.path.dirname(ort.__file__), "capi", name)
    if not os.path.exists(path):
        return f"{name} is not in this onnxruntime package"
    try:
        ctypes.CDLL(path, mode=getattr(os, "RTLD_LAZY", 1) | getattr(os, "RTLD_LOCAL", 0))
    except OSError as exc:
        return str(exc)
    return ""


# --- the environment ----------------------------------------------------------------------------

def _run(cmd: Sequence[str], timeout: float = 20) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def gpu_devices() -> list[dict[str, str]]:
    """Name, total memory, driver and compute capability of each GPU, from nvidia-smi (else NVML)."""
    out = _run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,compute_cap",
                "--format=csv,noheader"]) if shutil.which("nvidia-smi") else ""
    devices = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            devices.append({"name": parts[0], "memory": parts[1], "driver": parts[2],
                            "compute_capability": parts[3] if len(parts) > 3 else "?"})
    if devices:
        return devices
    with contextlib.suppress(Exception):  # nvidia-ml-py, where nvidia-smi is missing
        import pynvml  # type: ignore[import-not-found,unused-ignore]

        pynvml.nvmlInit()
        driver = pynvml.nvmlSystemGetDriverVersion()
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20
            devices.append({"name": str(pynvml.nvmlDeviceGetName(handle)), "memory": f"{memory} MiB",
                            "driver": str(driver), "compute_capability": "?"})
    return devices


def _cuda_version_call(library: str, function: str) -> str:
    """A CUDA ``int *version`` getter (cuDriverGetVersion, cudaRuntimeGetVersion) → '13.0'; '' if absent."""
    try:
        lib = ctypes.CDLL(library)
        value = ctypes.c_int(0)
        if getattr(lib, function)(ctypes.byref(value)) != 0 or value.value <= 0:
            return ""
    except (OSError, AttributeError):
        return ""
    return f"{value.value // 1000}.{value.value % 1000 // 10}"


def cudnn_version(major: int = 9) -> str:
    try:
        lib = ctypes.CDLL(f"libcudnn.so.{major}")
        lib.cudnnGetVersion.restype = ctypes.c_size_t
        value = int(lib.cudnnGetVersion())
    except (OSError, AttributeError):
        return ""
    return f"{value // 10000}.{value % 10000 // 100}.{value % 100}" if value >= 10000 else str(value)


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    found = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def cpu_name() -> str:
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as info:
        return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    return platform.processor() or "unknown CPU"


def collect_env(preloaded: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything the report says about the host; loads the providers (call :func:`preload_cuda` first)."""
    import onnxruntime as ort

    from shared.models.providers import usable_providers

    build = ort_build()
    available = list(ort.get_available_providers())
    usable = usable_providers(("tensorrt", "cuda", "cpu"))
    problems = {p: provider_library_problem(p) or "the library loads, but no session could use it (no GPU?)"
                for p in (TRT, CUDA) if p in available and p not in usable}
    cuda_major = build["cuda"].split(".")[0] if build["cuda"] else ""
    nvidia_smi = _run(["nvidia-smi"]) if shutil.which("nvidia-smi") else ""
    smi_cuda = re.search(r"CUDA Version:\s*([\d.]+)", nvidia_smi)
    return {
        "host": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                 "system": f"{platform.system()} {platform.release()}"},
        "gpus": gpu_devices(),
        "driver_cuda": _cuda_version_call("libcuda.so.1", "cuDriverGetVersion")
        or (smi_cuda.group(1) if smi_cuda else ""),
        "runtime_cuda": _cuda_version_call(f"libcudart.so.{cuda_major}", "cudaRuntimeGetVersion")
        if cuda_major else "",
        "cudnn": cudnn_version(),
        "ort": build,
        "available": available,
        "usable": usable,
        "problems": problems,
        "preload": dict(preloaded or {}),
        "libraries": loaded_cuda_libraries(),
        "ld_library_path": [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p],
        "packages": package_versions(),
    }


# --- sessions, placement and sweeps -------------------------------------------------------------

@dataclass
class Placement:
    """Where the nodes of one session went: assigned (the partitioned graph) and run (one profiled run)."""
    assigned: dict[str, int] = field(default_factory=dict)
    """Nodes per execution provider in ORT's graph assignment."""
    ran: dict[str, int] = field(default_factory=dict)
    """Kernels per execution provider in the profile of one run (what really executed)."""
    off_first: dict[str, int] = field(default_factory=dict)
    """``provider: op type`` → count, for every kernel that ran outside the chain's first provider."""
    copies: int = 0
    """Memcpy kernels (host ↔ device) in that run."""


@dataclass
class Sweep:
    service: str
    model: str
    version: str
    variant: str
    chain: list[str]
    """The providers asked for, ORT names, in order."""
    session_providers: list[str]
    """What the session really registered (``get_providers()``)."""
    threads: int
    io_binding: bool
    rows_per_event: float
    points: list[dict[str, Any]] = field(default_factory=list)
    """``{"batch": n, "rows_per_s": [...]}`` per point, as :class:`~tools.bench.model_limit.BatchPoint`."""
    placement: Placement | None = None
    stopped: str = ""
    """Why the sweep ended early ('' when the sweep rule ended it), or the error that stopped it."""
    seconds: float = 0.0

    @property
    def on_gpu(self) -> bool:
        return bool(self.session_providers) and self.session_providers[0] != CPU

    def batch_points(self) -> list[BatchPoint]:
        from tools.bench.model_limit import BatchPoint

        return [BatchPoint(int(p["batch"]), [float(x) for x in p["rows_per_s"]]) for p in self.points]

    def best(self) -> BatchPoint | None:
        points = self.batch_points()
        return max(points, key=lambda p: p.median) if points else None

    @property
    def events_per_s(self) -> float:
        best = self.best()
        return best.median / self.rows_per_event if best else math.nan

    def label(self) -> str:
        chain = "→".join(short(p) for p in self.chain)
        threads = f", {self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else ""
        return f"{chain} {self.variant}{threads}"

    def as_model_limit(self) -> ModelLimit:
        from tools.bench.model_limit import ModelLimit

        return ModelLimit(self.service, self.model, self.version, ",".join(self.session_providers), self.variant,
                          self.rows_per_event, self.batch_points(), self.threads, self.threads == os.cpu_count())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Sweep:
        fields = dict(data)
        placement = fields.pop("placement", None)
        return cls(**fields, placement=Placement(**placement) if placement else None)


def short(provider: str) -> str:
    return provider.removesuffix("ExecutionProvider")


def profile_shapes(feeds: Mapping[str, np.ndarray], batched: set[str], rows: int) -> str:
    """``name:1x17,other:1x4``: each input's shape with the batch axis set to ``rows`` (TensorRT
    profile syntax); inputs without a batch axis keep their own shape."""
    parts = []
    for name, value in feeds.items():
        shape = [rows if axis == 0 and name in batched else int(d) for axis, d in enumerate(value.shape)]
        parts.append(f"{name}:{'x'.join(str(d) for d in shape)}")
    return ",".join(parts)


def tensorrt_options(feeds: Mapping[str, np.ndarray], batched: set[str], cache_dir: Path,
                     max_batch: int = TRT_MAX_BATCH, fp16: bool = False) -> dict[str, Any]:
    """Engine and timing caches in ``cache_dir`` and one explicit profile (1 .. ``max_batch`` rows)."""
    return {
        "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache_dir),
        "trt_profile_min_shapes": profile_shapes(feeds, batched, 1),
        "trt_profile_opt_shapes": profile_shapes(feeds, batched, max_batch),
        "trt_profile_max_shapes": profile_shapes(feeds, batched, max_batch),
        "trt_fp16_enable": fp16,
    }


def provider_entries(chain: Sequence[str], trt_options: Mapping[str, Any] | None = None
                     ) -> list[str | tuple[str, dict[str, Any]]]:
    entries: list[str | tuple[str, dict[str, Any]]] = []
    for name in chain:
        if name == TRT:
            entries.append((TRT, dict(trt_options or {})))
        elif name == CUDA:
            entries.append((CUDA, {"device_id": 0}))
        else:
            entries.append(name)
    return entries


def make_session(model: bytes, chain: Sequence[str], *, threads: int = 0,
                 trt_options: Mapping[str, Any] | None = None, profile_prefix: str | None = None
                 ) -> ort.InferenceSession:
    """A session on ``chain`` with no silent fallback: a provider that fails to load raises."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    if profile_prefix:
        options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    session = ort.InferenceSession(model, sess_options=options, providers=provider_entries(chain, trt_options))
    session.disable_fallback()
    return session


def assigned_nodes(session: ort.InferenceSession) -> dict[str, int]:
    """Nodes per provider from ORT's recorded graph assignment ({} where this ORT cannot tell)."""
    getter = getattr(session, "get_provider_graph_assignment_info", None)
    if getter is None:
        return {}
    counts: Counter[str] = Counter()
    for subgraph in getter():
        counts[str(subgraph.ep_name)] += len(subgraph.get_nodes())
    return dict(counts)


def profiled_kernels(events: Sequence[Mapping[str, Any]], first: str) -> Placement:
    """Kernels per provider in an ORT profile (its JSON events), and those outside ``first``."""
    ran: Counter[str] = Counter()
    off: Counter[str] = Counter()
    copies = 0
    for event in events:
        args = event.get("args") or {}
        if event.get("cat") != "Node" or "provider" not in args:
            continue
        provider, op = str(args["provider"]), str(args.get("op_name", "?"))
        ran[provider] += 1
        if op.startswith("Memcpy"):
            copies += 1
        if provider != first:
            off[f"{short(provider)}: {op}"] += 1
    return Placement(ran=dict(ran), off_first=dict(off), copies=copies)


def node_placement(model: bytes, chain: Sequence[str], feeds: Mapping[str, np.ndarray], *, threads: int = 0,
                   trt_options: Mapping[str, Any] | None = None) -> Placement:
    """Run ``feeds`` once through a profiled session on ``chain`` and say where each node went."""
    with tempfile.TemporaryDirectory(prefix="ort-profile-") as folder:
        session = make_session(model, chain, threads=threads, trt_options=trt_options,
                               profile_prefix=os.path.join(folder, "profile"))
        session.run(None, dict(feeds))
        path = session.end_profiling()
        events = json.loads(Path(path).read_text())
        placement = profiled_kernels(events, session.get_providers()[0])
        placement.assigned = assigned_nodes(session)
    return placement


class Timer:
    """``run(feeds)`` through IO binding (inputs copied to the device once, outputs bound on the
    device and copied back once: the serving path on a GPU) or plain ``session.run``."""

    def __init__(self, session: ort.InferenceSession, io_binding: bool) -> None:
        self.session = session
        self.io_binding = io_binding
        self.outputs = [o.name for o in session.get_outputs()]
        self.provider = str(session.get_providers()[0])
        self.device = "cpu" if self.provider == CPU else "cuda"

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``feeds`` in the graph's input dtypes (before timing)."""
        return match_dtypes(self.session, feeds)

    def run(self, feeds: Mapping[str, np.ndarray]) -> None:
        if not self.io_binding:
            self.session.run(self.outputs, dict(feeds))
            return
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        for name in self.outputs:
            binding.bind_output(name, self.device)
        self.session.run_with_iobinding(binding)
        binding.copy_outputs_to_cpu()

    def rows_per_s(self, batches: Sequence[Mapping[str, np.ndarray]], min_s: float) -> tuple[float, float]:
        """(rows/s, seconds per pass over ``batches``) of repeated passes."""
        from tools.bench.model_limit import time_batches

        return time_batches(self.run, [dict(b) for b in batches], min_s)


def run_sweep(timer: Timer, captured: CapturedFeeds, batched: set[str], batches: Sequence[int],
              *, repeats: int, min_s: float, deadline: float, patience: int | None = None,
              clock: Callable[[], float] = time.monotonic) -> tuple[list[dict[str, Any]], str]:
    """The model-limit sweep (:func:`tools.bench.model_limit.still_rising` decides where it stops)
    under a deadline: a point that would not end before ``deadline`` is not started. Each point
    runs the batches :func:`tools.bench.model_limit.batches_of` builds (a text model's graph calls
    for micro-batches of real messages, grouped with the provider's cost model; else the captured
    feeds tiled)."""
    from tools.bench.model_limit import PATIENCE, BatchPoint, batches_of, still_rising

    points: list[BatchPoint] = []
    pass_s, rows_before = 0.0, 0
    for batch in batches:
        feeds = [timer.prepare(f) for f in batches_of(captured, batch, batched, timer.provider)]
        rows = sum(int(next(iter(f.values())).shape[0]) for f in feeds)
        scale = rows / rows_before if rows_before else 1.0
        expected = (1 + repeats) * max(min_s, 2 * pass_s * scale) + pass_s * scale
        if points and clock() + expected > deadline:
            return _points(points), f"time budget: batch {batch:,} not measured"
        for f in feeds:
            timer.run(f)  # warm: the first call of a shape allocates (and builds TensorRT engines)
        timings = [timer.rows_per_s(feeds, min_s) for _ in range(repeats)]
        pass_s, rows_before = max(t[1] for t in timings), rows
        points.append(BatchPoint(batch, [t[0] for t in timings]))
        if not still_rising([p.median for p in points], patience=patience or PATIENCE):
            break
    return _points(points), ""


def _points(points: Sequence[BatchPoint]) -> list[dict[str, Any]]:
    return [{"batch": p.batch, "rows_per_s": list(p.rows_per_s)} for p in points]


@dataclass
class Plan:
    """What one ``limits`` step measures."""
    batches: Sequence[int]
    repeats: int
    min_s: float
    deadline: float
    tensorrt: bool = True
    trt_cache: Path = Path(tempfile.gettempdir()) / "shopstream-trt"
    variants: Sequence[str] = GPU_VARIANTS


def measurements(usable: Sequence[str], tensorrt: bool, cpu_threads: Sequence[int]
                 ) -> list[tuple[list[str], str, int, bool]]:
    """(chain, variant, threads, io binding) to measure, GPU chains first; the CPU reference is
    always fp32 at each of ``cpu_threads``."""
    gpu_chains = []
    if tensorrt and TRT in usable:
        gpu_chains.append([TRT, CUDA, CPU])
    if CUDA in usable:
        gpu_chains.append([CUDA, CPU])
    plan = [(chain, variant, 0, True) for chain in gpu_chains for variant in GPU_VARIANTS]
    return plan + [([CPU], "fp32", threads, False) for threads in cpu_threads]


def measure_service(service: str, plan: Plan, write: Callable[[list[Sweep]], None] | None = None,
                    captured: CapturedFeeds | None = None, usable: Sequence[str] | None = None,
                    cpu_threads: Sequence[int] | None = None) -> list[Sweep]:
    """Every measurement of one service's model (:func:`measurements`); ``write`` gets the results
    after each one, so a step killed by its timeout still leaves what it finished."""
    from shared.models.providers import usable_providers
    from shared.models.repository import ModelRepository
    from tools.bench.model_limit import capture, served_graph, thread_counts
    from tools.bench.wiring import MODELS_DIR

    captured = captured or capture(service)
    usable = list(usable if usable is not None else usable_providers(("tensorrt", "cuda", "cpu")))
    # TensorRT's one shape profile fixes every axis but the batch: a text model's sequence axis varies.
    todo = measurements(usable, plan.tensorrt and captured.batches is None, cpu_threads or thread_counts())
    todo = [m for m in todo if m[1] in plan.variants or m[0] == [CPU]]
    repo = ModelRepository(MODELS_DIR)
    version = repo.resolve(captured.model)
    results: list[Sweep] = []
    for i, (chain, variant, threads, io_binding) in enumerate(todo):
        start = time.monotonic()
        share = start + (plan.deadline - start) / (len(todo) - i)
        sweep = Sweep(service, captured.model, version, variant, chain, [], threads, io_binding,
                      captured.rows_per_event)
        try:
            manifest, data = repo.load_verified(captured.model, version, None if variant == "fp32" else variant)
            _measure_one(sweep, served_graph(manifest, data, captured.transform), captured, plan, share)
        except Exception as exc:  # one failed chain or variant must not lose the others
            logger.exception("%s %s failed", service, sweep.label())
            sweep.stopped = f"{type(exc).__name__}: {str(exc)[:300]}"
        sweep.seconds = time.monotonic() - start
        results.append(sweep)
        if write:
            write(results)
    return results


def _measure_one(sweep: Sweep, data: bytes, captured: CapturedFeeds, plan: Plan, deadline: float) -> None:
    batched = batched_inputs_of(make_session(data, [CPU], threads=1))
    from tools.bench.model_limit import sweep_patience, swept

    trt_options = None
    batches = swept(captured, plan.batches)
    if sweep.chain[0] == TRT:
        plan.trt_cache.mkdir(parents=True, exist_ok=True)
        trt_options = tensorrt_options(captured.feeds, batched, plan.trt_cache)
        batches = [b for b in batches if b <= TRT_MAX_BATCH]
    session = make_session(data, sweep.chain, threads=sweep.threads, trt_options=trt_options)
    sweep.session_providers = list(session.get_providers())
    if sweep.session_providers[0] != sweep.chain[0]:
        raise RuntimeError(f"asked for {sweep.chain}, the session has {sweep.session_providers}")
    sweep.placement = node_placement(data, sweep.chain, match_dtypes(session, captured.feeds), threads=sweep.threads,
                                     trt_options=trt_options)
    sweep.points, sweep.stopped = run_sweep(Timer(session, sweep.io_binding), captured, batched, batches,
                                            repeats=plan.repeats, min_s=plan.min_s, deadline=deadline,
                                            patience=sweep_patience(captured, batches))


def match_dtypes(session: ort.InferenceSession, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``feeds`` cast to the graph's input dtypes where they differ (float32 → float16 for a model
    with fp16 inputs), as ``OnnxModel.run`` does for the services."""
    import numpy as np

    from shared.models.session import ORT_DTYPES

    wanted = {i.name: ORT_DTYPES.get(i.type) for i in session.get_inputs()}
    out = {}
    for name, value in feeds.items():
        dtype = wanted.get(name)
        keep = dtype in (None, "str") or value.dtype == dtype
        out[name] = value if keep else np.ascontiguousarray(value, dtype=dtype)
    return out


def batched_inputs_of(session: ort.InferenceSession) -> set[str]:
    """Inputs whose first axis is symbolic (the batch axis)."""
    return {i.name for i in session.get_inputs() if i.shape and not isinstance(i.shape[0], int)}


# --- the report ---------------------------------------------------------------------------------

def _fmt(value: float, digits: int = 0) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{short(k)} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "n/a"


def env_lines(env: Mapping[str, Any]) -> list[str]:
    gpus = env.get("gpus") or []
    gpu = "; ".join(f"{g['name']}, {g['memory']}, driver {g['driver']}, compute capability {g['compute_capability']}"
                    for g in gpus) or "none visible (no nvidia-smi and no NVML device)"
    ort_info = env.get("ort", {})
    host = env.get("host", {})
    preload = env.get("preload", {})
    if preload.get("called"):
        said = "; ".join(x for x in (preload.get("printed", ""), preload.get("error", "")) if x)
        preload_line = f"called{': ' + said.replace(chr(10), ' ') if said else ', nothing to report'}"
    else:
        preload_line = f"not called: {preload.get('why', '?')}"
    libraries = env.get("libraries") or []
    problems = env.get("problems") or {}
    lines = [
        f"- GPU: {gpu}",
        f"- CUDA: driver API {env.get('driver_cuda') or 'none (no libcuda.so.1)'}, runtime "
        f"{env.get('runtime_cuda') or 'not loaded'}, cuDNN {env.get('cudnn') or 'not loaded'}",
        f"- onnxruntime: {ort_info.get('package', '?')} {ort_info.get('version', '?')}"
        f"{' built for CUDA ' + ort_info['cuda'] if ort_info.get('cuda') else ' (no CUDA build)'}, "
        f"at {ort_info.get('location', '?')}",
        f"- host: {host.get('cpu', '?')}, {host.get('cores', '?')} cores, Python {host.get('python', '?')}, "
        f"{host.get('system', '?')}",
        f"- providers: available {', '.join(map(short, env.get('available', []))) or 'n/a'}; "
        f"usable here {', '.join(map(short, env.get('usable', []))) or 'n/a'}",
    ]
    lines += [f"- {short(p)} unusable: {why}" for p, why in problems.items()]
    lines += [f"- onnxruntime.preload_dlls(): {preload_line}",
              "- CUDA libraries loaded from: " + (", ".join(libraries) if libraries else "none loaded"),
              "- LD_LIBRARY_PATH: " + (", ".join(env.get("ld_library_path") or []) or "(empty)"),
              "- packages: " + ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items())]
    return lines


def tensorrt_line(env: Mapping[str, Any], sweeps: Sequence[Sweep], tensorrt: str, cache: str) -> str:
    trt = [s for s in sweeps if s.chain and s.chain[0] == TRT]
    if trt:
        return (f"- TensorRT: measured with an engine and timing cache in {cache} and one explicit shape profile per "
                f"model (1 .. {TRT_MAX_BATCH:,} rows; batches above it are not swept on TensorRT)")
    if tensorrt == "off":
        return "- TensorRT: left out (TENSORRT=off)"
    why = (env.get("problems") or {}).get(TRT) or (
        "not in this onnxruntime build" if TRT not in env.get("available", []) else "not usable here")
    return f"- TensorRT: left out, its provider does not load here: {why}"


def placement_table(sweeps: Sequence[Sweep]) -> list[str]:
    lines = ["| service | model | measurement | session providers | nodes assigned per provider "
             "| kernels run per provider | run outside the first provider | host↔device copies |",
             "|---|---|---|---|---|---|---|---|"]
    seen = set()
    for s in sweeps:
        key = (s.service, s.variant, tuple(s.chain))
        if s.placement is None or key in seen:
            continue
        seen.add(key)
        p = s.placement
        off = ", ".join(f"{k} x{v}" for k, v in sorted(p.off_first.items())) or "none"
        lines.append(f"| {s.service} | {s.model} {s.version} | {s.label()} | "
                     f"{', '.join(map(short, s.session_providers))} | {_counts(p.assigned)} | {_counts(p.ran)} | "
                     f"{off} | {p.copies} |")
    return lines


def limits_table(sweeps: Sequence[Sweep]) -> list[str]:
    lines = ["| service | model | measurement | best batch | rows/s (median ± half-range) | events/s | swept "
             "| seconds | stopped early |", "|---|---|---|---|---|---|---|---|---|"]
    for s in sweeps:
        best = s.best()
        swept = (f"{s.points[0]['batch']:,} .. {s.points[-1]['batch']:,}" if s.points else "none")
        rate = f"{_fmt(best.median)} ± {_fmt(best.spread)}" if best else "n/a"
        lines.append(f"| {s.service} | {s.model} {s.version} | {s.label()} | {f'{best.batch:,}' if best else 'n/a'} "
                     f"| {rate} | {_fmt(s.events_per_s)} | {swept} | {s.seconds:.0f} | {s.stopped or 'no'} |")
    return lines


def ratio_table(sweeps: Sequence[Sweep]) -> list[str]:
    lines = ["| service | best GPU (events/s) | GPU fp32 (events/s) | best CPU, same host (events/s) "
             "| GPU / CPU | GPU fp32 / CPU |", "|---|---|---|---|---|---|"]
    for service in dict.fromkeys(s.service for s in sweeps):
        mine = [s for s in sweeps if s.service == service and s.points]
        gpu = [s for s in mine if s.on_gpu]
        cpu = [s for s in mine if not s.on_gpu]
        best_gpu = max(gpu, key=lambda s: s.events_per_s, default=None)
        fp32 = max((s for s in gpu if s.variant == "fp32"), key=lambda s: s.events_per_s, default=None)
        best_cpu = max(cpu, key=lambda s: s.events_per_s, default=None)

        def cell(s: Sweep | None) -> str:
            return f"{_fmt(s.events_per_s)} ({s.label()})" if s else "not measured"

        def div(a: Sweep | None, b: Sweep | None) -> str:
            return f"{a.events_per_s / b.events_per_s:.2f}" if a and b and b.events_per_s > 0 else "n/a"

        lines.append(f"| {service} | {cell(best_gpu)} | {cell(fp32)} | {cell(best_cpu)} | {div(best_gpu, best_cpu)} "
                     f"| {div(fp32, best_cpu)} |")
    return lines


def detail_lines(sweeps: Sequence[Sweep]) -> list[str]:
    lines = []
    for s in sweeps:
        points = ", ".join(f"{p.batch:,}: {_fmt(p.median)}" for p in s.batch_points())
        lines.append(f"- {s.service} {s.label()} (rows/s by batch): {points or 'none'}")
    return lines


def read_steps(path: Path | None) -> list[list[str]]:
    if path is None or not path.exists():
        return []
    return [line.split("\t") for line in path.read_text().splitlines() if line.strip()]


def build_report(env: Mapping[str, Any] | None, parts: Sequence[Mapping[str, Any]], steps: Sequence[Sequence[str]],
                 *, title: str, tensorrt: str = "auto", trt_cache: str = "?", extra: Sequence[str] = ()) -> str:
    sweeps = [Sweep.from_json(s) for part in parts for s in part.get("sweeps", [])]
    lines = [f"# {title}", "", "## Host and versions", ""]
    lines += env_lines(env) if env else ["- the environment step did not finish: see the steps below"]
    lines.append(tensorrt_line(env or {}, sweeps, tensorrt, trt_cache))
    no_gpu = not any(s.on_gpu for s in sweeps)
    if no_gpu:
        lines += ["", "**No GPU provider ran here: every figure below is the CPU (a smoke run, not a GPU figure).**"]
    lines += ["", "## Where each node ran", "",
              "From ONNX Runtime: the graph assignment it records (nodes per provider) and the profile of one run "
              "of the service's own tensors (kernels per provider, and each op type that ran outside the chain's "
              "first provider).", ""]
    lines += placement_table(sweeps)
    lines += ["", "## Model limits", "",
              "Each point: the median of the repeats ± half their range; the sweep doubles the batch and stops once "
              "two doublings in a row gained < 3 % (tools/bench/model_limit.py), or when its share of the time "
              "budget is spent. GPU sessions use IO binding (the host → device and device → host copies are timed).",
              ""]
    lines += limits_table(sweeps)
    lines += ["", "## GPU / CPU on the same host", "", *ratio_table(sweeps)]
    lines += ["", "## Sweeps", "", *detail_lines(sweeps)]
    if extra:
        lines += ["", "## Service runs", "", *extra]
    if steps:
        lines += ["", "## Steps", "", "| step | status | seconds | limit (s) | note |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join((list(row) + [""] * 5)[:5]) + " |" for row in steps]
    return "\n".join(lines) + "\n"


# --- the service run (needs Kafka) and the `shopstream bench gpu` suite --------------------------

def provider_chains() -> list[tuple[str, ...]]:
    """The accelerated chains this machine can run, else CPU alone."""
    from shared.models.providers import usable_providers

    usable = usable_providers(("tensorrt", "cuda", "cpu"))
    chains: list[tuple[str, ...]] = []
    if TRT in usable:
        chains.append(("tensorrt", "cuda", "cpu"))
    if CUDA in usable:
        chains.append(("cuda", "cpu"))
    return chains or [("cpu",)]


def no_gpu_reason() -> str:
    """Why no GPU chain can run here ('' when CUDA or TensorRT is usable), in the words of
    nvidia-smi/NVML and of ONNX Runtime's own provider list."""
    import onnxruntime as ort

    if provider_chains()[0] != ("cpu",):
        return ""
    devices = gpu_devices()
    seen = ", ".join(d["name"] for d in devices) or "no GPU visible (no nvidia-smi, no NVML device)"
    available = [p for p in ort.get_available_providers() if p in (CUDA, TRT)]
    if not available:
        return f"{seen}; {ort_build()['package']} {ort.__version__} has no CUDA or TensorRT provider"
    problems = "; ".join(f"{short(p)}: {provider_library_problem(p) or 'loads, but no session could use it'}"
                         for p in available)
    return f"{seen}; {problems}"


def gpu_model_limits(service: str, repeats: int = 1, min_s: float = 0.2) -> list[ModelLimit]:
    """The sweeps of :func:`measure_service` (every GPU chain and variant, then the CPU reference)."""
    from tools.bench.model_limit import BATCH_SIZES

    plan = Plan(BATCH_SIZES, repeats, min_s, time.monotonic() + 3600)
    return [s.as_model_limit() for s in measure_service(service, plan) if s.points]


def gpu_service_run(service: str, kafka: KafkaSettings, events: int, log_dir: Path, partitions: int = 4) -> str:
    """The service end to end on CUDA (else the CPU), fp16 model. Not on TensorRT: the service's own
    sessions have no engine cache or shape profiles, so TensorRT would rebuild engines per batch shape."""
    from tools.bench.contestants import run_service
    from tools.bench.report import fmt_rate
    from tools.bench.service import sim_records
    from tools.bench.wiring import new_topic, wire
    from tools.supervisor import produce

    chain = next((c for c in provider_chains() if c[0] != "tensorrt"), ("cpu",))
    source = new_topic(kafka, f"{service}-gpu-in", partitions)
    produce(kafka.bootstrap_servers, source, sim_records(service, events))
    env = {"EXECUTION_PROVIDERS": json.dumps(list(chain)), "MODEL_VARIANT": "fp16"}
    run = run_service(service, kafka, wire(kafka, service, source, partitions, f"{service}-gpu"), events,
                      log_dir / f"{service}-gpu.log", env)
    return (f"{service} end to end, providers {','.join(chain)}, fp16: {fmt_rate(run.throughput, 0)} events/s, "
            f"{run.cpu_s_per_1000:.3f} CPU s / 1000 events, peak RSS {run.usage.peak_rss_mb:.0f} MB")


def format_gpu_limits(limits: Sequence[ModelLimit]) -> str:
    from tools.bench.report import format_model

    return "\n\n".join(format_model(m) for m in limits)


# --- command line -------------------------------------------------------------------------------

def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


def cmd_env(args: argparse.Namespace) -> int:
    preloaded = preload_cuda()
    env = collect_env(preloaded)
    _write_json(args.json, env)
    print("\n".join(env_lines(env)))
    return 0


def cmd_limits(args: argparse.Namespace) -> int:
    from tools.bench.model_limit import BATCH_SIZES

    started = time.monotonic()
    preloaded = preload_cuda()
    batches = QUICK_BATCHES if args.quick else BATCH_SIZES
    plan = Plan(batches, args.repeats or (1 if args.quick else 3), args.min_s or (0.05 if args.quick else 0.25),
                started + args.deadline_s, args.tensorrt != "off", args.trt_cache)
    result: dict[str, Any] = {"service": args.service, "preload": preloaded, "sweeps": []}

    def write(sweeps: list[Sweep]) -> None:
        result["sweeps"] = [dataclasses.asdict(s) for s in sweeps]
        result["libraries"] = loaded_cuda_libraries()
        _write_json(args.json, result)

    write([])
    threads = (1,) if args.quick else None
    sweeps = measure_service(args.service, plan, write, cpu_threads=threads)
    for s in sweeps:
        print(f"{s.service} {s.label()}: {_fmt(s.events_per_s)} events/s on {','.join(map(short, s.session_providers))}"
              f"{'; ' + s.stopped if s.stopped else ''}", flush=True)
    return 0 if all(s.points for s in sweeps) else 1


def cmd_service(args: argparse.Namespace) -> int:
    from tools.bench.session import kafka_for

    preload_cuda()
    lines = []
    log_dir = Path(tempfile.mkdtemp(prefix="shopstream-bench-gpu-"))
    with kafka_for(argparse.Namespace(bootstrap_servers=args.bootstrap_servers)) as kafka:
        for service in args.services:
            lines.append("- " + gpu_service_run(service, kafka, args.events, log_dir, args.partitions))
            args.out.write_text("\n".join(lines) + "\n")
    return 0


def cmd_services(args: argparse.Namespace) -> int:
    from tools.bench.session import services_with_models

    print(" ".join(services_with_models()))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    env = json.loads(args.env.read_text()) if args.env and args.env.exists() else None
    parts = [json.loads(p.read_text()) for p in args.parts if p.exists()]
    extra = args.service_md.read_text().splitlines() if args.service_md and args.service_md.exists() else []
    text = build_report(env, parts, read_steps(args.steps), title=args.title, tensorrt=args.tensorrt,
                        trt_cache=str(args.trt_cache), extra=extra)
    args.out.write_text(text)
    print(text)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.bench.gpu", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("libdirs", help="print the nvidia-* package library folders, ':'-joined")
    sub.add_parser("services", help="print the services that have a default model")
    env = sub.add_parser("env", help="GPU, driver, CUDA, onnxruntime and providers → JSON")
    env.add_argument("--json", type=Path, required=True)
    limits = sub.add_parser("limits", help="one service's sweeps and node placement → JSON")
    limits.add_argument("service")
    limits.add_argument("--json", type=Path, required=True)
    limits.add_argument("--deadline-s", type=float, default=120.0, help="plan to finish within this many seconds")
    limits.add_argument("--quick", action="store_true", help=f"batches {QUICK_BATCHES}, one repeat, one CPU thread")
    limits.add_argument("--repeats", type=int, default=0)
    limits.add_argument("--min-s", type=float, default=0.0)
    limits.add_argument("--tensorrt", choices=("auto", "off"), default="auto")
    limits.add_argument("--trt-cache", type=Path, default=Plan.trt_cache)
    service = sub.add_parser("service", help="services end to end on the first GPU chain (needs Kafka or Java)")
    service.add_argument("services", nargs="+")
    service.add_argument("--out", type=Path, required=True)
    service.add_argument("--events", type=int, default=20_000)
    service.add_argument("--partitions", type=int, default=4)
    service.add_argument("--bootstrap-servers")
    report = sub.add_parser("report", help="the markdown report from the steps' JSON")
    report.add_argument("parts", nargs="*", type=Path)
    report.add_argument("--env", type=Path)
    report.add_argument("--steps", type=Path)
    report.add_argument("--service-md", type=Path)
    report.add_argument("--out", type=Path, required=True)
    report.add_argument("--title", default="GPU benchmark: model limits")
    report.add_argument("--tensorrt", choices=("auto", "off"), default="auto")
    report.add_argument("--trt-cache", type=Path, default=Plan.trt_cache)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("shared").setLevel(logging.WARNING)
    if args.command == "libdirs":
        print(":".join(nvidia_lib_dirs()))
        return 0
    handler: Callable[[argparse.Namespace], int] = {
        "env": cmd_env, "limits": cmd_limits, "service": cmd_service, "services": cmd_services,
        "report": cmd_report}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
