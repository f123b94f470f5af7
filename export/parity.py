"""The parity gate: torch and ONNX Runtime must agree on held-out inputs.

One log line per output (worst absolute deviation against the tolerance), then a typed
:class:`~shared.errors.ParityError` naming the worst output if any element is off by more
than ``atol + rtol * |torch|``. ORT runs on the CPU provider so the gate means the same on
every machine.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from export.convert import as_tensors
from export.spec import ExportSpec, Feeds
from shared.errors import ParityError
from shared.models.manifest import ParityInfo
from shared.models.session import OnnxModel

logger = logging.getLogger(__name__)


def torch_outputs(module: torch.nn.Module, spec: ExportSpec, feeds: Feeds) -> dict[str, np.ndarray]:
    """Run ``module`` in eval mode and name its outputs as the spec does."""
    module.eval()
    with torch.no_grad():
        result = module(*as_tensors(spec, feeds))
    if isinstance(result, torch.Tensor):
        values: Sequence[torch.Tensor] = [result]
    elif isinstance(result, Mapping):
        values = [result[name] for name in spec.output_names]
    else:
        values = list(result)
    if len(values) != len(spec.outputs):
        raise ParityError(spec.output_names[0], float("inf"), spec.atol)
    return {name: v.detach().cpu().numpy() for name, v in zip(spec.output_names, values, strict=True)}


def deviation(want: np.ndarray, got: np.ndarray, rtol: float = 0.0) -> tuple[float, float]:
    """Worst ``|want - got|`` and worst excess over ``rtol * |want|``; ``inf`` if shapes or NaNs differ."""
    want, got = np.asarray(want, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if want.shape != got.shape or not np.array_equal(np.isnan(want), np.isnan(got)):
        return float("inf"), float("inf")
    if want.size == 0:
        return 0.0, 0.0
    same = (want == got) | np.isnan(want)  # equal infinities and matching NaNs are no deviation
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(want - got))
    return float(diff.max()), float(np.max(diff - rtol * np.abs(np.where(same, 0.0, want))))


def compare(
    reference: Sequence[Mapping[str, np.ndarray]],
    candidate: Sequence[Mapping[str, np.ndarray]],
    names: Sequence[str],
    rtol: float = 0.0,
) -> tuple[dict[str, float], dict[str, float]]:
    """Per output over all batches: worst absolute deviation, and worst excess (for the gate)."""
    max_abs = dict.fromkeys(names, 0.0)
    excess = dict.fromkeys(names, 0.0)
    for ref, cand in zip(reference, candidate, strict=True):
        for name in names:
            worst, over = deviation(ref[name], cand[name], rtol)
            max_abs[name], excess[name] = max(max_abs[name], worst), max(excess[name], over)
    return max_abs, excess


def check_parity(
    module: torch.nn.Module, model: bytes | Path, spec: ExportSpec, heldout: Sequence[Feeds]
) -> ParityInfo:
    """Compare torch and ORT on ``heldout`` feeds; raise ``ParityError`` on the worst output."""
    onnx_model = OnnxModel(model, name=spec.name, version="candidate", providers=["cpu"])
    reference = [torch_outputs(module, spec, feeds) for feeds in heldout]
    candidate = [onnx_model.run(feeds) for feeds in heldout]
    max_abs, excess = compare(reference, candidate, spec.output_names, spec.rtol)
    for name in spec.output_names:
        ok = excess[name] <= spec.atol
        logger.log(logging.INFO if ok else logging.WARNING,
                   "parity model=%s output=%s max_abs_diff=%.3g atol=%.3g rtol=%.3g %s",
                   spec.name, name, max_abs[name], spec.atol, spec.rtol, "ok" if ok else "FAILED")
    failed = [name for name in spec.output_names if excess[name] > spec.atol]
    if failed:
        worst = max(failed, key=lambda name: excess[name])
        raise ParityError(worst, max_abs[worst], spec.atol)
    rows = sum(len(next(iter(feeds.values()))) for feeds in heldout if feeds)
    return ParityInfo(atol=spec.atol, rtol=spec.rtol, max_abs_diff=max_abs, samples=rows, passed=True)
