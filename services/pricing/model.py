"""The exported demand model: its ONNX contract, its feature-spec check, and the optimiser's view of it."""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from services.pricing.features import FEATURE_NAMES, N_FEATURES
from shared.errors import ModelSpecMismatch
from shared.models.manifest import ModelManifest, TensorSpec
from shared.models.slot import LoadedModel

logger = logging.getLogger(__name__)

INPUTS = [
    TensorSpec(name="context", dtype="float32", shape=("batch", N_FEATURES)),
    TensorSpec(name="log_price_ratio", dtype="float32", shape=("batch", "candidates")),
]
OUTPUTS = [
    TensorSpec(name="units", dtype="float32", shape=("batch", "candidates")),
    TensorSpec(name="elasticity", dtype="float32", shape=("batch", "candidates")),
]


def check_feature_spec(manifest: ModelManifest) -> None:
    """Refuse a model trained on different features than :mod:`services.pricing.features` builds."""
    features = tuple(manifest.feature_spec.get("features", ()))
    if features != FEATURE_NAMES:
        raise ModelSpecMismatch(f"{manifest.name} {manifest.version}: feature spec {features} != {FEATURE_NAMES}")


class LoadedDemandModel:
    """The optimiser's :class:`~services.pricing.optimizer.DemandModel` over one loaded version."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded

    def predict(
        self, context: npt.NDArray[np.float32], log_ratio: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        out = self.loaded.model.run({"context": context, "log_price_ratio": log_ratio})
        return out["units"], out["elasticity"]
