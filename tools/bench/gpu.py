"""The GPU benchmark: model limit and one service run on CUDA / TensorRT, fp16, IO binding.

Where no GPU is present the same code runs on the CPU provider (a smoke check of the script);
the report names the provider each figure really ran on, so CPU figures are never mistaken
for GPU ones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from shared.models.providers import usable_providers
from shared.settings import KafkaSettings
from tools.bench.contestants import run_service
from tools.bench.model_limit import BATCH_SIZES, ModelLimit, capture, measure_model_limit
from tools.bench.report import fmt_rate, format_model
from tools.bench.service import sim_records
from tools.bench.wiring import new_topic, wire
from tools.supervisor import produce

logger = logging.getLogger(__name__)

TENSORRT_BATCHES = (1, 64, 1024)
"""TensorRT builds an engine per new input shape; a short sweep keeps the script to minutes."""


def provider_chains() -> list[tuple[str, ...]]:
    """The accelerated chains this machine can run, else CPU alone."""
    usable = usable_providers(("tensorrt", "cuda", "cpu"))
    chains: list[tuple[str, ...]] = []
    if any("Tensorrt" in p for p in usable):
        chains.append(("tensorrt", "cuda", "cpu"))
    if any("CUDA" in p for p in usable):
        chains.append(("cuda", "cpu"))
    return chains or [("cpu",)]


def gpu_model_limits(service: str, repeats: int = 1, min_s: float = 0.2) -> list[ModelLimit]:
    captured = capture(service)
    limits = []
    for chain in provider_chains():
        batches: Sequence[int] = TENSORRT_BATCHES if chain[0] == "tensorrt" else BATCH_SIZES
        for variant in (None, "fp16"):
            limits.append(measure_model_limit(service, repeats=repeats, min_s=min_s, batch_sizes=batches,
                                              variant=variant, providers=chain, threads=0, io_binding=True,
                                              captured=captured))
    return limits


def gpu_service_run(service: str, kafka: KafkaSettings, events: int, log_dir: Path, partitions: int = 4) -> str:
    """The service end to end on the first accelerated chain, fp16 model."""
    chain = provider_chains()[0]
    source = new_topic(kafka, f"{service}-gpu-in", partitions)
    produce(kafka.bootstrap_servers, source, sim_records(service, events))
    env = {"EXECUTION_PROVIDERS": json.dumps(list(chain)), "MODEL_VARIANT": "fp16"}
    run = run_service(service, kafka, wire(kafka, service, source, partitions, f"{service}-gpu"), events,
                      log_dir / f"{service}-gpu.log", env)
    return (f"{service} end to end, providers {','.join(chain)}, fp16: {fmt_rate(run.throughput, 0)} events/s, "
            f"{run.cpu_s_per_1000:.3f} CPU s / 1000 events, peak RSS {run.usage.peak_rss_mb:.0f} MB")


def format_gpu_limits(limits: Sequence[ModelLimit]) -> str:
    return "\n\n".join(format_model(m) for m in limits)
