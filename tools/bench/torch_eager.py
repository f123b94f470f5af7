"""Torch eager per message: the seed's way of serving a fine-tuned transformer, as a contestant.

The version's own fine-tuned weights (the safetensors checkpoint the export keeps beside the
graph) are loaded into the module the graph was exported from
(:class:`export.support.model.IntentClassifier`, through :func:`export.checkpoint.load_from_version`)
and run in PyTorch eager mode, one message per ``forward`` under ``torch.inference_mode()``.
The messages are the model limit's own sample at batch 1 (:mod:`tools.bench.text`), an evenly
spaced :data:`MESSAGES` of them; tokenising is not timed, as in the model limit. Before timing,
the module's probabilities are checked against the ONNX graph's on a few of the messages
(:data:`ATOL`), so the figure is the same model's. Timed at one thread and one per core, like
the model limit, and reported as a one-point :class:`~tools.bench.model_limit.ModelLimit`
(provider ``torch eager``, batch 1).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from shared.errors import ModelError
from shared.models.repository import ModelRepository
from tools.bench.model_limit import BatchPoint, ModelLimit, load_model, thread_counts, time_batches
from tools.bench.scoring import CapturedFeeds, Feeds
from tools.bench.wiring import MODELS_DIR

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

PROVIDER = "torch eager"
MESSAGES = 128
"""Messages per timing pass (one forward each)."""
ATOL = 0.02
"""Largest |torch - ONNX| probability allowed. Looser than the export's own parity gate (1e-3):
the checkpoint keeps its weights in fp16 (half the size), cast back to fp32 here, while the graph
was exported from the fp32 weights."""


def load_module(repository: ModelRepository, name: str, version: str) -> nn.Module:
    """The version's fine-tuned torch module, in inference mode; ``ModelError`` without a checkpoint."""
    from transformers import BertConfig

    from export.checkpoint import load_from_version
    from export.support.model import from_config

    manifest = repository.get(name, version)
    config = manifest.training.extra.get("bert_config")
    if manifest.checkpoint is None or not isinstance(config, dict):
        raise ModelError(f"{name} {version} kept no torch checkpoint (or no bert_config): nothing to run eagerly")
    module = from_config(BertConfig.from_dict(config), len(manifest.preprocessing["labels"]))
    load_from_version(module, repository, name, version)
    return module.eval()


def check_parity(module: nn.Module, captured: CapturedFeeds, feeds: Sequence[Feeds]) -> float:
    """Max |torch - ONNX| over ``feeds``' probabilities; ``ModelError`` above :data:`ATOL`."""
    graph, _ = load_model(captured.model, None, ("cpu",), 1, None, captured.transform)
    worst = max(float(np.abs(_probs(module, f) - graph.run(f)["probs"]).max()) for f in feeds)
    if worst > ATOL:
        raise ModelError(f"the torch module differs from the ONNX graph by {worst:.2g} (> {ATOL:g})")
    return worst


def _probs(module: nn.Module, feeds: Feeds) -> np.ndarray:
    import torch

    with torch.inference_mode():
        _, probs = module(torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"]))
    return np.asarray(probs.numpy(), dtype=np.float32)


def measure_torch_eager(service: str, captured: CapturedFeeds, *, repeats: int = 3, min_s: float = 0.5,
                        messages: int = MESSAGES, threads: Sequence[int] | None = None) -> list[ModelLimit]:
    """Messages/s of one eager forward per message, at each thread count (:func:`thread_counts`)."""
    import torch

    if captured.batches is None:
        raise ModelError(f"{service}: not a text model (no per-message batches)")
    repo = ModelRepository(MODELS_DIR)
    version = repo.resolve(captured.model)
    module = load_module(repo, captured.model, version)
    singles = captured.batches(1)
    singles = singles[:: max(1, len(singles) // messages)][:messages]
    worst = check_parity(module, captured, singles[:: max(1, len(singles) // 8)])
    logger.info("%s torch eager: %s %s checkpoint, max |torch - onnx| %.1g", service, captured.model, version, worst)
    before = torch.get_num_threads()
    results = []
    try:
        for n in threads or thread_counts():
            torch.set_num_threads(n)
            time_batches(lambda f: _probs(module, f), singles[:8], 0.0, 1)  # warm
            rates = [time_batches(lambda f: _probs(module, f), singles, min_s, 1)[0] for _ in range(repeats)]
            results.append(ModelLimit(service, captured.model, version, PROVIDER, "fp32", captured.rows_per_event,
                                      [BatchPoint(1, rates)], n, n == os.cpu_count()))
            logger.info("%s torch eager, %d threads: %.0f messages/s", service, n, results[-1].events_per_s)
    finally:
        torch.set_num_threads(before)
    return results
