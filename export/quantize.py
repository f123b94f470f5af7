"""Lower-precision variants of an exported graph, with their accuracy change measured.

* ``fp16``: ``onnxruntime.transformers.float16`` (ships inside onnxruntime; the separate
  ``onnxconverter-common`` is not needed). Inputs and outputs stay float32, so a scorer's
  tensors and spec checks are the same for every variant.
* ``int8``: ``onnxruntime.quantization.quantize_dynamic`` with int8 weights (MatMul/Gemm);
  activations are quantised at run time, so no calibration data is needed.

Each variant is scored with the recipe's metric callback and compared with the fp32 graph on
the parity inputs; both go into the manifest. A variant that cannot be built is skipped with
a warning: variants are optional, the fp32 model is what the gate protects.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.float16 import convert_float_to_float16

from export.parity import compare
from export.spec import Feeds
from shared.models.manifest import VariantInfo, file_ref
from shared.models.session import OnnxModel

logger = logging.getLogger(__name__)

RunFn = Callable[[Feeds], dict[str, np.ndarray]]
MetricFn = Callable[[RunFn], dict[str, float]]
"""Given a way to run a graph, evaluate it on held-out data: ``{"auc": 0.81, ...}``."""


def make_fp16(source: Path, target: Path) -> None:
    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))


class _DropQuantizerChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (record.name == "root" and _QUANTIZER_CHATTER.search(message))


_QUANTIZER_CHATTER = re.compile(r"pre-processing before quantization|Quantization parameters for tensor")


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    # quantize_dynamic logs advice per call and a line per tensor on the root logger. The
    # advised pre-processing (symbolic shape inference) fails on transformer graphs with a
    # dynamic sequence axis, and dynamic quantisation needs no activation ranges.
    chatter = _DropQuantizerChatter()
    logging.getLogger().addFilter(chatter)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(chatter)


def make_int8(source: Path, target: Path) -> None:
    with _quiet_quantizer():
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


MAKERS: dict[str, Callable[[Path, Path], None]] = {"fp16": make_fp16, "int8": make_int8}


def build_variants(
    name: str,
    base: Path,
    kinds: Sequence[str],
    heldout: Sequence[Feeds],
    metric_fn: MetricFn | None,
    timings: dict[str, float],
) -> tuple[dict[str, VariantInfo], dict[str, float]]:
    """Make each variant next to ``base`` (``model.<kind>.onnx``); returns the variants and the
    fp32 ONNX graph's own metrics (the baseline of each ``metric_delta``)."""
    base_model = OnnxModel(base, name=name, version="fp32", providers=["cpu"])
    base_outputs = [base_model.run(feeds) for feeds in heldout]
    base_metrics = metric_fn(base_model.run) if metric_fn else {}
    variants: dict[str, VariantInfo] = {}
    for kind in kinds:
        target = base.with_name(f"{base.stem}.{kind}.onnx")
        start = time.perf_counter()
        try:
            MAKERS[kind](base, target)
            variant = OnnxModel(target, name=name, version=kind, providers=["cpu"])
            outputs = [variant.run(feeds) for feeds in heldout]
        except Exception as exc:  # a converter gap on one op should not sink the export
            logger.warning("variant model=%s kind=%s skipped: %s: %s", name, kind, type(exc).__name__, exc)
            continue
        max_abs, _ = compare(base_outputs, outputs, list(base_outputs[0]) if base_outputs else [])
        metrics = metric_fn(variant.run) if metric_fn else {}
        variants[kind] = _info(target, metrics, base_metrics, max_abs)
        timings[kind] = time.perf_counter() - start
        logger.info("variant model=%s kind=%s size=%d bytes delta=%s max_abs_diff=%s", name, kind,
                    variants[kind].size_bytes, _fmt(variants[kind].metric_delta), _fmt(max_abs))
    return variants, base_metrics


def _info(path: Path, metrics: dict[str, float], base: Mapping[str, float], max_abs: dict[str, float]) -> VariantInfo:
    ref = file_ref(path)
    delta = {k: metrics[k] - base[k] for k in metrics if k in base}
    return VariantInfo(**ref.model_dump(), metrics=metrics, metric_delta=delta, max_abs_diff=max_abs)


def _fmt(values: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:+.4g}" for k, v in values.items()) + "}"
