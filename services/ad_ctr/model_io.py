"""The two graphs of the ad CTR service and how they are found.

* ``ad_ctr`` (``models/ad_ctr/<v>/model.onnx``): sparse ids + cached creative-text
  embedding -> calibrated pCTR. Run once per micro-batch over every candidate.
* ``ad_ctr_text`` (``models/ad_ctr_text/<v>/model.onnx``): hashed title tokens -> text
  embedding. Run only for creatives missing from the embedding cache.

The CTR manifest pins the text-encoder version it was trained with
(``preprocessing["text_encoder"] = {"name", "version", "sha256"}``), so the pair always
swaps together.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from services.ad_ctr.features import FeatureSpec, TextSpec
from shared.errors import ModelSpecMismatch
from shared.models.manifest import ModelManifest, TensorSpec
from shared.models.repository import ModelRepository
from shared.models.session import OnnxModel

logger = logging.getLogger(__name__)

CTR_INPUTS = (
    TensorSpec(name="sparse", dtype="int64", shape=("batch", "fields")),
    TensorSpec(name="text_emb", dtype="float32", shape=("batch", "text_dim")),
)
CTR_OUTPUTS = (
    TensorSpec(name="logit", dtype="float32", shape=("batch",)),
    TensorSpec(name="pctr", dtype="float32", shape=("batch",)),
)
TEXT_INPUTS = (
    TensorSpec(name="token_ids", dtype="int64", shape=("batch", "tokens")),
    TensorSpec(name="token_mask", dtype="float32", shape=("batch", "tokens")),
)
TEXT_OUTPUTS = (TensorSpec(name="embedding", dtype="float32", shape=("batch", "text_dim")),)


@dataclass(frozen=True)
class CtrModelMeta:
    """What the scorer reads from a CTR manifest."""

    spec: FeatureSpec
    text: TextSpec
    text_encoder: dict[str, str]

    @classmethod
    def of(cls, manifest: ModelManifest) -> CtrModelMeta:
        """Raises ``ModelSpecMismatch`` when the manifest lacks what this scorer needs."""
        fs, pre = manifest.feature_spec, manifest.preprocessing
        try:
            spec = FeatureSpec.from_dict(fs)
            text = TextSpec(**fs["text"])
            encoder = {k: str(pre["text_encoder"][k]) for k in ("name", "version", "sha256")}
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelSpecMismatch(f"{manifest.name} {manifest.version}: feature spec unusable: {exc!r}") from exc
        return cls(spec, text, encoder)


def load_text_encoder(repository: ModelRepository, meta: CtrModelMeta, providers: Sequence[str],
                      threads: int) -> OnnxModel:
    """The pinned text-encoder version, checksum-verified (bytes and manifest sha must agree)."""
    name, version = meta.text_encoder["name"], meta.text_encoder["version"]
    manifest, data = repository.load_verified(name, version)
    if manifest.sha256 != meta.text_encoder["sha256"]:
        raise ModelSpecMismatch(f"{name} {version} sha256 {manifest.sha256[:12]} is not the one the CTR model "
                                f"was trained with ({meta.text_encoder['sha256'][:12]})")
    model = OnnxModel(data, name=name, version=version, providers=providers, intra_op_threads=threads)
    model.check_spec(TEXT_INPUTS, TEXT_OUTPUTS)
    model.warm_up((1, 16), {"tokens": meta.text.max_tokens})
    return model
