"""An ONNX Runtime session with provider fallback, spec checks, warm-up and IO binding.

Usage::

    model = OnnxModel(onnx_bytes, name="fraud", version="v0003", providers=settings.execution_providers)
    model.check_spec(FRAUD_INPUTS, FRAUD_OUTPUTS)   # ModelSpecMismatch if the graph differs
    model.warm_up(batch_sizes=(1, 8, 256))
    scores = model.run({"features": x})["score"]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from shared.errors import ModelError, ModelSpecMismatch, ScoringError
from shared.models.manifest import TensorSpec
from shared.models.providers import CPU, quiet_ort, usable_providers

logger = logging.getLogger(__name__)

ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "str",
}
Feeds = Mapping[str, np.ndarray]
SpecLike = Sequence[TensorSpec] | Mapping[str, str]
"""Expected tensors: full specs, or just ``{name: dtype}``."""


def _specs(meta: Sequence[ort.NodeArg]) -> list[TensorSpec]:
    return [
        TensorSpec(
            name=arg.name,
            dtype=ORT_DTYPES.get(arg.type, arg.type),
            shape=tuple("?" if d is None else d for d in (arg.shape or [])),
        )
        for arg in meta
    ]


class OnnxModel:
    """One loaded ONNX graph. Thread-safe for concurrent :meth:`run` calls (ORT sessions are)."""

    def __init__(
        self,
        model: bytes | Path,
        *,
        name: str = "model",
        version: str = "?",
        providers: Sequence[str] = ("tensorrt", "cuda", "cpu"),
        intra_op_threads: int = 0,
        io_binding: bool | None = None,
    ) -> None:
        """Create the session (CPU/GPU work, no network). ``io_binding=None``: only on GPU."""
        self.name = name
        self.version = version
        self.requested = tuple(providers)
        self._session = self._create(model if isinstance(model, bytes) else str(model), intra_op_threads)
        self.inputs = _specs(self._session.get_inputs())
        self.outputs = _specs(self._session.get_outputs())
        self._output_names = [o.name for o in self.outputs]
        self._input_dtypes = {i.name: np.dtype(i.dtype) for i in self.inputs if i.dtype != "str"}
        self.io_binding = self.provider != CPU if io_binding is None else io_binding
        self._device = "cpu" if self.provider == CPU else "cuda"
        self.warmed_up = False
        logger.info(
            "model=%s version=%s provider=%s (requested: %s)",
            name, version, self.provider, ",".join(self.requested),
        )

    @property
    def provider(self) -> str:
        """The execution provider the session really runs on (first of ``get_providers()``)."""
        return str(self._session.get_providers()[0])

    def _create(self, model: bytes | str, threads: int) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        # ORT's worker threads spin for a while after every run, waiting for the next; between a
        # stream's small batches that spin found no work and burned a core: fraud's service used
        # 46 us of CPU per event in the spinning worker against 40 in its whole loop.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # node-placement warnings on GPU are noise; errors still show
        last_error: Exception | None = None
        usable = usable_providers(self.requested)
        for i, provider in enumerate(usable):
            try:
                with quiet_ort():
                    # The providers after this one take the nodes it cannot run (TensorRT → CUDA → CPU).
                    session = ort.InferenceSession(
                        model, sess_options=options, providers=usable[i:], enable_fallback=0
                    )
            except Exception as exc:  # ORT raises its own pybind types (Fail, InvalidGraph...)
                last_error = exc
                logger.debug("model=%s provider %s failed: %s", self.name, provider, exc)
                continue
            if session.get_providers()[0] == provider:
                return session
        raise ModelError(f"model {self.name} {self.version}: no execution provider could load it: {last_error}")

    def check_spec(self, expected_inputs: SpecLike, expected_outputs: SpecLike = (), *, source: str = "scorer") -> None:
        """Raise ``ModelSpecMismatch`` unless the graph has exactly the expected inputs and at
        least the expected outputs, with the same dtypes, ranks and fixed dims."""
        check_specs(self.inputs, self.outputs, expected_inputs, expected_outputs,
                    what=f"model {self.name} {self.version}", source=source)

    def warm_up(
        self,
        batch_sizes: Sequence[int] = (1, 8, 256),
        dims: Mapping[str, int] | None = None,
        samples: Sequence[Feeds] = (),
    ) -> float:
        """Run representative shapes once so the first real batch is not slow; returns seconds.

        Zeros are fed for each batch size (symbolic axis 0 = batch, other symbolic dims from
        ``dims``, default 1), then any ``samples``. Zero ids are valid embedding indices.
        """
        start = time.perf_counter()
        for batch in batch_sizes:
            self.run(self.zeros(batch, dims))
        for feeds in samples:
            self.run(feeds)
        self.warmed_up = True
        seconds = time.perf_counter() - start
        logger.info("model=%s version=%s warmed up batches=%s in %.3fs", self.name, self.version,
                    list(batch_sizes), seconds)
        return seconds

    def zeros(self, batch: int, dims: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
        """All-zero feeds of batch size ``batch`` (for warm-up and benchmarks)."""
        dims = dims or {}
        feeds = {}
        for spec in self.inputs:
            shape = [
                d if isinstance(d, int) else (batch if axis == 0 else dims.get(d, 1))
                for axis, d in enumerate(spec.shape)
            ]
            feeds[spec.name] = np.zeros(shape, dtype=self._input_dtypes.get(spec.name, np.float32))
        return feeds

    def run(self, feeds: Feeds) -> dict[str, np.ndarray]:
        """Outputs by name. Feeds of a castable dtype (float64 → float32) are converted;
        anything ORT rejects becomes a ``ScoringError`` naming the model."""
        prepared = {name: self._prepare(name, value) for name, value in feeds.items()}
        try:
            if self.io_binding:
                return self._run_bound(prepared)
            results = self._session.run(self._output_names, prepared)
        except Exception as exc:
            raise ScoringError(f"model {self.name} {self.version} ({self.provider}) failed: {exc}") from exc
        return dict(zip(self._output_names, results, strict=True))

    def _prepare(self, name: str, value: np.ndarray) -> np.ndarray:
        expected = self._input_dtypes.get(name)
        if expected is not None and value.dtype != expected and np.can_cast(value.dtype, expected, "same_kind"):
            return np.ascontiguousarray(value, dtype=expected)
        return value

    def _run_bound(self, feeds: Feeds) -> dict[str, np.ndarray]:
        # Outputs stay on the device until copied once; inputs are copied host → device once.
        binding = self._session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in self._output_names:
            binding.bind_output(name, self._device)
        self._session.run_with_iobinding(binding)
        return dict(zip(self._output_names, binding.copy_outputs_to_cpu(), strict=True))


def graph_specs(graph: onnx.GraphProto) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The inputs and outputs of an ONNX graph as ORT lists them (from IR version 4 an input backed by
    an initializer is a constant, not an input), read from the proto without creating a session."""
    initialized = {t.name for t in graph.initializer}

    def spec(value: onnx.ValueInfoProto) -> TensorSpec:
        tensor = value.type.tensor_type
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim)
        return TensorSpec(name=value.name, dtype="str" if dtype.kind == "O" else dtype.name, shape=dims)

    return [spec(v) for v in graph.input if v.name not in initialized], [spec(v) for v in graph.output]


def check_specs(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], expected_inputs: SpecLike,
                expected_outputs: SpecLike = (), *, what: str, source: str) -> None:
    """Raise ``ModelSpecMismatch`` unless ``inputs`` are exactly the expected inputs and ``outputs``
    hold at least the expected outputs, with the same dtypes, ranks and fixed dims."""
    problems = _compare("input", _as_specs(expected_inputs), list(inputs), exact=True)
    problems += _compare("output", _as_specs(expected_outputs), list(outputs), exact=False)
    if problems:
        raise ModelSpecMismatch(f"{what} does not match the {source}'s spec: " + "; ".join(problems))


def _as_specs(expected: SpecLike) -> list[TensorSpec]:
    if isinstance(expected, Mapping):
        return [TensorSpec(name=name, dtype=dtype, shape=()) for name, dtype in expected.items()]
    return list(expected)


def _compare(kind: str, expected: list[TensorSpec], actual: list[TensorSpec], *, exact: bool) -> list[str]:
    have = {t.name: t for t in actual}
    problems = [f"missing {kind} {e.name!r} (graph has {sorted(have)})" for e in expected if e.name not in have]
    if exact:
        wanted = {e.name for e in expected}
        problems += [f"unexpected {kind} {name!r}" for name in have if name not in wanted]
    for spec in expected:
        got = have.get(spec.name)
        if got is None:
            continue
        if got.dtype != spec.dtype:
            problems.append(f"{kind} {spec.name!r} is {got.dtype}, expected {spec.dtype}")
        if spec.shape and len(got.shape) != len(spec.shape):
            problems.append(f"{kind} {spec.name!r} has rank {len(got.shape)}, expected {len(spec.shape)}")
        elif spec.shape and any(
            isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(got.shape, spec.shape, strict=True)
        ):
            problems.append(f"{kind} {spec.name!r} has shape {list(got.shape)}, expected {list(spec.shape)}")
    return problems
