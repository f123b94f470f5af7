"""Torch weights kept beside a version (safetensors, never pickle) for fine-tuning from it."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from shared.errors import ChecksumMismatch, ModelError
from shared.models.manifest import sha256_file
from shared.models.repository import ModelRepository

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "weights.safetensors"


def save_checkpoint(module: torch.nn.Module, path: Path, dtype: torch.dtype | None = None) -> None:
    """Write the module's parameters and buffers (shared tensors handled by safetensors).

    ``dtype`` stores the floating tensors in that type (a half-size fp16 checkpoint);
    :func:`load_from_version` casts them back to the module's own dtype.
    """
    if dtype is not None:
        module = copy.deepcopy(module).to(dtype)
    save_model(module, str(path))


def load_from_version(module: torch.nn.Module, repository: ModelRepository, name: str, version: str) -> None:
    """Load the weights of ``name`` ``version`` into ``module`` after checking their sha256.

    The module must have the same architecture (strict load); raises ``ModelError`` if the
    version kept no checkpoint and ``ChecksumMismatch`` if the file changed.
    """
    manifest = repository.get(name, version)
    if manifest.checkpoint is None:
        raise ModelError(f"{name} {version} kept no torch checkpoint; cannot fine-tune from it")
    path = repository.path(name, version) / manifest.checkpoint.file
    actual = sha256_file(path)
    if actual != manifest.checkpoint.sha256:
        raise ChecksumMismatch(str(path), manifest.checkpoint.sha256, actual)
    missing, unexpected = load_model(module, str(path), strict=False)
    if missing or unexpected:
        raise ModelError(
            f"{name} {version} checkpoint does not fit this architecture: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    logger.info("model=%s loaded weights of version=%s for fine-tuning", name, version)
