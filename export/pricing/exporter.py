"""Export the demand model to ONNX, gate it on parity with torch, publish a repository version."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from export.pricing.model import DemandNet
from services.pricing.features import FEATURE_NAMES, N_FEATURES
from services.pricing.model import INPUTS, OUTPUTS
from shared.errors import ParityError
from shared.models.manifest import ModelManifest, ParityInfo, TrainingInfo, sha256_file
from shared.models.repository import ModelRepository

logger = logging.getLogger(__name__)

OPSET = 17
PARITY_ATOL = 1e-4
PARITY_RTOL = 1e-4


def _export_onnx(net: DemandNet, path: Path) -> None:
    ctx = torch.zeros(2, N_FEATURES)
    ratio = torch.zeros(2, 5)
    torch.onnx.export(
        net.eval(), (ctx, ratio), str(path), input_names=[t.name for t in INPUTS],
        output_names=[t.name for t in OUTPUTS], opset_version=OPSET, dynamo=False,
        dynamic_axes={"context": {0: "batch"}, "log_price_ratio": {0: "batch", 1: "candidates"},
                      "units": {0: "batch", 1: "candidates"}, "elasticity": {0: "batch", 1: "candidates"}},
    )


def parity(net: DemandNet, path: Path, context: np.ndarray, ratio: np.ndarray) -> ParityInfo:
    """Compare torch and ONNX Runtime outputs on real rows; raise :class:`ParityError` if off."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([t.name for t in OUTPUTS], {"context": context, "log_price_ratio": ratio})
    with torch.no_grad():
        want = [t.numpy() for t in net(torch.from_numpy(context), torch.from_numpy(ratio))]
    diffs: dict[str, float] = {}
    for spec, g, w in zip(OUTPUTS, got, want, strict=True):
        diff = float(np.max(np.abs(g - w) / (PARITY_ATOL + PARITY_RTOL * np.abs(w)))) * PARITY_ATOL
        diffs[spec.name] = float(np.max(np.abs(g - w)))
        logger.info("parity %s: max |torch - onnx| = %.3g", spec.name, diffs[spec.name])
        if diff > PARITY_ATOL:
            raise ParityError(spec.name, diffs[spec.name], PARITY_ATOL)
    return ParityInfo(atol=PARITY_ATOL, rtol=PARITY_RTOL, max_abs_diff=diffs, samples=len(context), passed=True)


def publish(
    net: DemandNet, models_dir: Path, sample_context: np.ndarray, sample_ratio: np.ndarray,
    training: TrainingInfo, metrics: dict[str, float], name: str = "pricing",
    preprocessing: dict[str, Any] | None = None,
) -> ModelManifest:
    """Export, check parity on the sample rows and write the next version of ``name``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        start = time.perf_counter()
        _export_onnx(net, path)
        exported = time.perf_counter()
        check = parity(net, path, sample_context.astype(np.float32), sample_ratio.astype(np.float32))
        manifest = ModelManifest(
            name=name, version="v0000", sha256=sha256_file(path), size_bytes=path.stat().st_size,
            inputs=INPUTS, outputs=OUTPUTS,
            feature_spec={"features": list(FEATURE_NAMES), "price_input": "log(price / ref_price), clipped to ±1.5",
                          "ref_price": "the request's current price"},
            preprocessing=preprocessing or {}, training=training, metrics=metrics, parity=check, opset=OPSET,
            libraries={"torch": torch.__version__, "onnxruntime": ort.__version__},
            timings={"export": exported - start, "parity": time.perf_counter() - exported},
        )
        return ModelRepository(models_dir).write_version(manifest, {"model.onnx": path})
