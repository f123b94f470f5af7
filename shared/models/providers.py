"""Choosing ONNX Runtime execution providers without a wall of errors.

The ``onnxruntime-gpu`` wheel lists the TensorRT and CUDA providers as *available* even on a
machine without a GPU, and creating a session with them prints pages of load errors before
falling back to the CPU. So each accelerated provider is probed once per process with a
one-node graph while ORT's default logger is silenced and its Python fallback disabled; the
probe counts only if the session really reports that provider. The result is cached.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator, Sequence

import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

logger = logging.getLogger(__name__)

PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
CPU = "CPUExecutionProvider"
_ORT_DEFAULT_SEVERITY = 2  # warning: ORT's own default; there is no getter to read it back
_ORT_FATAL_ONLY = 4


@contextlib.contextmanager
def quiet_ort() -> Iterator[None]:
    """Silence ORT's process-wide C++ logger (provider load failures are expected here)."""
    ort.set_default_logger_severity(_ORT_FATAL_ONLY)
    try:
        yield
    finally:
        ort.set_default_logger_severity(_ORT_DEFAULT_SEVERITY)


def ort_provider_names(requested: Sequence[str]) -> list[str]:
    """Settings names (``tensorrt``, ``cuda``, ``cpu``) → ORT names, order kept, CPU always last."""
    names = [PROVIDER_NAMES.get(r.lower(), r) for r in requested]
    return [n for n in dict.fromkeys(names) if n != CPU] + [CPU]


def usable_providers(requested: Sequence[str]) -> list[str]:
    """The requested providers that work on this machine, in order; always ends with CPU."""
    available = set(ort.get_available_providers())
    return [p for p in ort_provider_names(requested) if p == CPU or (p in available and _probe(p))]


@functools.cache
def _probe(provider: str) -> bool:
    try:
        with quiet_ort():
            session = ort.InferenceSession(
                _probe_model(), providers=[provider, CPU], enable_fallback=0
            )
    except Exception as exc:  # a missing shared library surfaces as RuntimeError or Fail
        logger.debug("provider %s unusable: %s", provider, exc)
        return False
    works = bool(session.get_providers()[0] == provider)
    logger.debug("provider %s %s", provider, "usable" if works else "not usable (session fell back)")
    return works


@functools.cache
def _probe_model() -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
