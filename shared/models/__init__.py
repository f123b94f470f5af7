"""Model repository, manifests, ONNX Runtime sessions and hot-swappable model slots."""

from shared.models.manifest import (
    FileRef,
    ModelManifest,
    ParityInfo,
    TensorSpec,
    TrainingInfo,
    VariantInfo,
    sha256_bytes,
    sha256_file,
)
from shared.models.repository import ModelRepository, format_version, version_number
from shared.models.session import OnnxModel
from shared.models.slot import LoadedModel, ModelSlot

__all__ = [
    "FileRef",
    "LoadedModel",
    "ModelManifest",
    "ModelRepository",
    "ModelSlot",
    "OnnxModel",
    "ParityInfo",
    "TensorSpec",
    "TrainingInfo",
    "VariantInfo",
    "format_version",
    "sha256_bytes",
    "sha256_file",
    "version_number",
]
