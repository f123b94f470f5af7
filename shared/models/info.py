"""What identifies the model that produced a score."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What produced a score; copied into lineage headers and the model info metric."""

    name: str
    version: str
    sha256: str
    provider: str = "none"
