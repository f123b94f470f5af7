"""The manifest that travels with every model version (``manifest.json``).

It says what the graph expects (tensor names, dtypes, shapes), what a scorer must do to
build those tensors (feature spec, preprocessing constants), where the model came from
(training data, metrics, parity result, library versions) and how to check the bytes
(sha256 of ``model.onnx`` and of each variant). Only JSON: no pickles.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import ModelError

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
Dim = int | str
"""A tensor dimension: a fixed size, or a symbolic name such as ``"batch"``."""


class TensorSpec(BaseModel):
    """One graph input or output; dtypes use numpy names (``float32``, ``int64``)."""

    model_config = ConfigDict(frozen=True)

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    """Symbolic dims are strings (dynamic axes); ints are fixed sizes."""

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {axis: dim for axis, dim in enumerate(self.shape) if isinstance(dim, str)}


class TrainingInfo(BaseModel):
    """Where the weights came from."""

    data: str = ""
    """Data set name or path, e.g. ``sim:seed=7`` or ``retailrocket``."""
    rows: int = 0
    epochs: int = 0
    seconds: float = 0.0
    from_version: str | None = None
    """The version fine-tuned from, or ``None`` when trained from scratch / pretrained weights."""
    extra: dict[str, Any] = Field(default_factory=dict)


class ParityInfo(BaseModel):
    """Result of the torch ↔ ONNX Runtime parity gate."""

    atol: float
    rtol: float = 0.0
    max_abs_diff: dict[str, float] = Field(default_factory=dict)
    """Worst absolute deviation per output name."""
    samples: int = 0
    """Number of held-out rows compared."""
    passed: bool


class FileRef(BaseModel):
    """A file in the version folder and its checksum."""

    file: str
    sha256: str
    size_bytes: int


class VariantInfo(FileRef):
    """An optional lower-precision copy (``fp16``, ``int8``) of the same graph."""

    metrics: dict[str, float] = Field(default_factory=dict)
    metric_delta: dict[str, float] = Field(default_factory=dict)
    """Variant metric minus base metric, per metric name."""
    max_abs_diff: dict[str, float] = Field(default_factory=dict)
    """Worst deviation from the fp32 ONNX outputs on the parity inputs."""


class ModelManifest(BaseModel):
    """Everything a scorer and an operator need to know about one model version."""

    model_config = ConfigDict(protected_namespaces=())

    name: str
    version: str
    file: str = MODEL_FILE
    sha256: str
    size_bytes: int = 0
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    feature_spec: dict[str, Any] = Field(default_factory=dict)
    """How raw events become input tensors (feature names, order, encodings)."""
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    """Constants the scorer needs: vocab sizes, normalisation means/stds, max lengths..."""
    training: TrainingInfo = Field(default_factory=TrainingInfo)
    metrics: dict[str, float] = Field(default_factory=dict)
    """Held-out evaluation metrics of the torch model."""
    parity: ParityInfo | None = None
    variants: dict[str, VariantInfo] = Field(default_factory=dict)
    checkpoint: FileRef | None = None
    """Torch weights (safetensors) kept for fine-tuning from this version."""
    assets: dict[str, FileRef] = Field(default_factory=dict)
    """Files a scorer reads beside the graph, by role (``{"tokenizer": tokenizer.json}``):
    versioned and checksummed with it, so a hot swap never pairs a graph with another
    version's tokenizer."""
    opset: int
    libraries: dict[str, str] = Field(default_factory=dict)
    """Versions of torch, transformers, onnx, onnxruntime used to build this version."""
    timings: dict[str, float] = Field(default_factory=dict)
    """Seconds per export step (train, export, parity, fp16, int8)."""
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def file_for(self, variant: str | None) -> tuple[str, str]:
        """``(file name, expected sha256)`` of the base model or of a named variant."""
        if variant is None:
            return self.file, self.sha256
        if variant not in self.variants:
            raise ModelError(
                f"{self.name} {self.version} has no variant {variant!r} (has: {sorted(self.variants) or 'none'})"
            )
        ref = self.variants[variant]
        return ref.file, ref.sha256

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    def save(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> ModelManifest:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_ref(path: Path) -> FileRef:
    return FileRef(file=path.name, sha256=sha256_file(path), size_bytes=path.stat().st_size)
