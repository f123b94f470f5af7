"""Torch eager per message: the seed's way of serving a fine-tuned transformer, as a contestant.

The version's own fine-tuned weights (the safetensors checkpoint the export keeps beside the
graph) are loaded into the module the graph was exported from
(:class:`export.support.model.IntentClassifier`, through :func:`export.checkpoint.load_from_version`)
and run in PyTorch eager mode, one message per ``forward`` under ``torch.inference_mode()``.
The messages are the model limit's own sample at batch 1 (:mod:`tools.bench.text`), an evenly
spaced :data:`MESSAGES` of them; tokenising is not timed, as in the model limit. The module's
probabilities are checked against the ONNX graph's on a few of the messages (:data:`ATOL`), so
the figure is the same model's. Reported as a one-point :class:`~tools.bench.model_limit.ModelLimit`
(provider ``torch eager``, batch 1) at one thread and one per core, like the model limit.

Each thread count runs in its own process with ``OMP_WAIT_POLICY=PASSIVE``: OpenMP threads that
spin between the ops of a small forward starve each other on a loaded machine (2 messages/s
instead of 110 on 2 busy cores), and the policy can only be set before torch starts; ONNX Runtime
is measured with spinning off too. ``python -m tools.bench.torch_eager --models-dir D --model M
--version V --feeds F.npz --threads N --repeats R --min-s S`` prints the child's result as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.errors import ModelError
from shared.models.providers import CPU
from shared.models.repository import ModelRepository
from tools.bench.model_limit import BatchPoint, ModelLimit, load_model, thread_counts, time_batches
from tools.bench.scoring import CapturedFeeds, Feeds
from tools.bench.wiring import MODELS_DIR, REPO_ROOT

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

PROVIDER = "torch eager"
MESSAGES = 128
"""Messages per timing pass (one forward each)."""
PARITY_MESSAGES = 8
ATOL = 0.02
"""Largest |torch - ONNX| probability allowed. Looser than the export's own parity gate (1e-3):
the checkpoint keeps its weights in fp16 (half the size), cast back to fp32 here, while the graph
was exported from the fp32 weights."""
CHILD_TIMEOUT_S = 900


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


def _probs(module: nn.Module, feeds: Feeds) -> np.ndarray:
    import torch

    with torch.inference_mode():
        _, probs = module(torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"]))
    return np.asarray(probs.numpy(), dtype=np.float32)


def check_parity(captured: CapturedFeeds, feeds: Sequence[Feeds], probs: Sequence[np.ndarray]) -> float:
    """Max |torch - ONNX| of ``probs`` (torch's, for ``feeds``); ``ModelError`` above :data:`ATOL`."""
    graph, _ = load_model(captured.model, None, ("cpu",), 1, None, captured.transform)
    worst = max(float(np.abs(p - graph.run(f)["probs"]).max()) for f, p in zip(feeds, probs, strict=True))
    if worst > ATOL:
        raise ModelError(f"the torch module differs from the ONNX graph by {worst:.2g} (> {ATOL:g})")
    return worst


def run_child(model: str, version: str, feeds: Path, threads: int, repeats: int, min_s: float) -> dict[str, Any]:
    """One thread count measured in a fresh process (see the module docstring)."""
    args = [sys.executable, "-m", "tools.bench.torch_eager", "--models-dir", str(MODELS_DIR), "--model", model,
            "--version", version, "--feeds", str(feeds), "--threads", str(threads), "--repeats", str(repeats),
            "--min-s", str(min_s)]
    env = {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "OMP_WAIT_POLICY": "PASSIVE",
           "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    if done.returncode != 0:
        raise ModelError(f"torch eager at {threads} threads exited with {done.returncode}: {done.stderr[-500:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_torch_eager(service: str, captured: CapturedFeeds, *, repeats: int = 3, min_s: float = 0.5,
                        messages: int = MESSAGES, threads: Sequence[int] | None = None) -> list[ModelLimit]:
    """Messages/s of one eager forward per message, at each thread count (:func:`thread_counts`)."""
    if captured.batches is None:
        raise ModelError(f"{service}: not a text model (no per-message batches)")
    repo = ModelRepository(MODELS_DIR)
    version = repo.resolve(captured.model)
    load_module(repo, captured.model, version)  # fails here, plainly, without a checkpoint
    singles = captured.batches(1, CPU)
    singles = singles[:: max(1, len(singles) // messages)][:messages]
    results = []
    with tempfile.TemporaryDirectory(prefix="torch-eager-") as folder:
        path = Path(folder) / "feeds.npz"
        arrays: dict[str, Any] = {f"{name}_{i}": f[name] for i, f in enumerate(singles) for name in f}
        np.savez(path, **arrays)
        for n in threads or thread_counts():
            child = run_child(captured.model, version, path, n, repeats, min_s)
            worst = check_parity(captured, singles[:PARITY_MESSAGES], [np.asarray(p, np.float32)
                                                                      for p in child["probs"]])
            results.append(ModelLimit(service, captured.model, version, PROVIDER, "fp32", captured.rows_per_event,
                                      [BatchPoint(1, child["rates"])], n, n == os.cpu_count()))
            logger.info("%s torch eager, %d threads: %.0f messages/s (max |torch - onnx| %.1g)", service, n,
                        results[-1].events_per_s, worst)
    return results


def load_feeds(path: Path) -> list[Feeds]:
    with np.load(path) as data:
        count = len(data.files) // 2
        return [{"input_ids": data[f"input_ids_{i}"], "attention_mask": data[f"attention_mask_{i}"]}
                for i in range(count)]


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(prog="python -m tools.bench.torch_eager")
    for name in ("--models-dir", "--feeds"):
        p.add_argument(name, type=Path, required=True)
    for name in ("--model", "--version"):
        p.add_argument(name, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--min-s", type=float, default=0.5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    module = load_module(ModelRepository(args.models_dir), args.model, args.version)
    singles = load_feeds(args.feeds)
    time_batches(lambda f: _probs(module, f), singles[:8], 0.0, 1)  # warm
    rates = [time_batches(lambda f: _probs(module, f), singles, args.min_s, 1)[0] for _ in range(args.repeats)]
    probs = [_probs(module, f).tolist() for f in singles[:PARITY_MESSAGES]]
    print(json.dumps({"rates": rates, "probs": probs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
