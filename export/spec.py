"""Export specs: what an exported graph looks like and how closely it must match torch.

One :class:`ExportSpec` per model, in the spirit of optimum's ONNX configs: input and output
tensors (names, dtypes, dynamic axes as symbolic dims), opset, tolerance, the constants the
scorer needs, and a factory for sample inputs. The torch module is called positionally with
the inputs in spec order, and returns one tensor, a tuple in output order, or a dict by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from shared.errors import ModelSpecMismatch
from shared.models.manifest import TensorSpec

Feeds = Mapping[str, np.ndarray]
SampleFactory = Callable[[int, np.random.Generator], dict[str, np.ndarray]]
"""``(batch_size, rng) → feeds``: realistic inputs (valid ids, plausible ranges)."""
Exporter = Literal["torchscript", "dynamo"]


@dataclass(frozen=True)
class ExportSpec:
    """How to export and check one model."""

    name: str
    """Repository name, e.g. ``fraud``; also the ``shopstream export`` argument."""
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    sample_inputs: SampleFactory
    opset: int = 17
    atol: float = 1e-4
    """The parity gate fails when ``|torch - onnx| > atol + rtol * |torch|`` anywhere."""
    rtol: float = 0.0
    exporter: Exporter = "torchscript"
    """``torchscript`` (``dynamo=False``) is faster and simpler for dynamic axes with torch 2.x
    here; ``dynamo`` uses ``torch.export`` (opset ≥ 18)."""
    preprocessing: Mapping[str, Any] = field(default_factory=dict)
    feature_spec: Mapping[str, Any] = field(default_factory=dict)
    trace_batch: int = 3
    """Batch size of the tracing sample; not 1, so no size-1 axis gets specialised."""

    @property
    def effective_opset(self) -> int:
        """The opset the graph gets (the dynamo exporter needs at least 18)."""
        return self.opset if self.exporter == "torchscript" else max(self.opset, 18)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Symbolic dims of every input and output, in ``torch.onnx.export`` form."""
        return {t.name: t.dynamic_axes for t in (*self.inputs, *self.outputs) if t.dynamic_axes}

    def samples(self, batch: int, seed: int) -> dict[str, np.ndarray]:
        feeds = self.sample_inputs(batch, np.random.default_rng(seed))
        self.check_feeds(feeds)
        return feeds

    def heldout(self, batches: Sequence[int] = (1, 7, 64), seed: int = 1234) -> list[dict[str, np.ndarray]]:
        """Parity inputs of several batch sizes, from a seed unrelated to the tracing sample."""
        return [self.samples(batch, seed + i) for i, batch in enumerate(batches)]

    def check_feeds(self, feeds: Feeds) -> None:
        """Raise ``ModelSpecMismatch`` if feeds do not have the spec's names, dtypes and ranks."""
        problems = [f"missing {t.name!r}" for t in self.inputs if t.name not in feeds]
        problems += [f"unexpected {name!r}" for name in feeds if name not in self.input_names]
        for spec in self.inputs:
            value = feeds.get(spec.name)
            if value is None:
                continue
            if value.dtype != np.dtype(spec.dtype):
                problems.append(f"{spec.name!r} is {value.dtype}, spec says {spec.dtype}")
            if value.ndim != len(spec.shape):
                problems.append(f"{spec.name!r} has rank {value.ndim}, spec says {len(spec.shape)}")
        if problems:
            raise ModelSpecMismatch(f"{self.name} sample inputs do not match the export spec: " + "; ".join(problems))
