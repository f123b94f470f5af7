"""The ad CTR scorer: every candidate of every request in a micro-batch in one ONNX call."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from services.ad_ctr.cache import EmbeddingCache
from services.ad_ctr.features import encode_requests, encode_titles
from services.ad_ctr.model_io import CTR_INPUTS, CTR_OUTPUTS, CtrModelMeta, load_text_encoder
from services.ad_ctr.ranking import batch_expected_value_ranks
from services.ad_ctr.settings import AdCtrSettings
from shared.models.manifest import ModelManifest
from shared.models.repository import ModelRepository
from shared.models.session import OnnxModel
from shared.runtime.metrics import BusinessMetrics, observe_many
from shared.runtime.model_scorer import ModelScorer
from shared.runtime.scorer import Event, Output, Rejected, Scored, ScoreResult, outputs_of
from shared.schemas.ads import AdRequest, CtrScores

logger = logging.getLogger(__name__)


class AdCtrScorer(ModelScorer[AdRequest, AdCtrSettings]):
    """Calibrated pCTR per candidate and the bid x pCTR ranking, per ad request."""

    input_schema: ClassVar[type[BaseModel]] = AdRequest
    output_schema: ClassVar[type[BaseModel]] = CtrScores
    model_inputs = CTR_INPUTS
    model_outputs = CTR_OUTPUTS

    def __init__(self, settings: AdCtrSettings) -> None:
        super().__init__(settings, settings.model_name)
        self.cache = EmbeddingCache(settings.embedding_cache_size)
        self._text: dict[str, tuple[CtrModelMeta, OnnxModel]] = {}
        """CTR version -> its manifest meta and pinned text encoder (loaded beside it)."""
        self._serving_version: str | None = None

    def warm_up_dims(self) -> Mapping[str, int]:
        return {"fields": 1, "text_dim": 1}

    def check_manifest(self, manifest: ModelManifest) -> None:
        # Runs while a CTR version is being prepared (also in the slot's loader thread), so the
        # encoder it needs is ready before the version can serve; a missing one refuses it.
        meta = CtrModelMeta.of(manifest)
        encoder = load_text_encoder(ModelRepository(self.settings.models_dir), meta,
                                    self.settings.execution_providers, self.settings.intra_op_threads)
        self._text[manifest.version] = (meta, encoder)

    def key_of(self, event: AdRequest) -> str | None:
        return event.request_id

    def check(self, request: AdRequest) -> Rejected | None:
        """Business limits beyond the schema (which already refuses empty lists and bad bids)."""
        n = len(request.candidates)
        if n == 0:
            return Rejected("no_candidates", "the request has no candidate ads")
        if n > self.settings.max_candidates:
            return Rejected("too_many_candidates", f"{n} candidates > max_candidates={self.settings.max_candidates}")
        bad = [c.ad_id for c in request.candidates if not (math.isfinite(c.bid) and c.bid > 0)]
        if bad:
            return Rejected("invalid_bid", f"bids must be finite and > 0; bad for ads {bad[:5]}")
        return None

    def record_business_metrics(
        self, service: str, results: Sequence[ScoreResult], metrics: BusinessMetrics
    ) -> None:
        pctrs = [c.pctr for scores in outputs_of(results, CtrScores) for c in scores.candidates]
        observe_many(metrics.score.labels(service), pctrs)

    def score(self, batch: Sequence[Event[AdRequest]]) -> Sequence[ScoreResult]:
        loaded = self.slot.current
        meta, encoder = self._text[loaded.manifest.version]
        if loaded.manifest.version != self._serving_version:
            self.cache.clear()  # embeddings of the previous text encoder do not fit the new graph
            self._serving_version = loaded.manifest.version
        results: list[ScoreResult | None] = [self.check(e.value) for e in batch]
        accepted = [e.value for e, r in zip(batch, results, strict=True) if r is None]
        if not accepted:
            return [r for r in results if r is not None]
        pctr = self._predict(accepted, meta, encoder, loaded.model)
        scored = iter(self._outputs(accepted, pctr, loaded.manifest.version))
        return [r if r is not None else next(scored) for r in results]

    def _predict(self, requests: list[AdRequest], meta: CtrModelMeta, encoder: OnnxModel,
                 model: OnnxModel) -> np.ndarray:
        cands = [c for r in requests for c in r.candidates]

        def encode(titles: Sequence[str]) -> np.ndarray:
            ids, mask = encode_titles(meta.text, titles)
            return encoder.run({"token_ids": ids, "token_mask": mask})["embedding"]

        text = self.cache.lookup([c.creative_id for c in cands], [c.title for c in cands], encode)
        out = model.run({"sparse": encode_requests(meta.spec, requests), "text_emb": text})
        return np.clip(out["pctr"].astype(np.float64), 0.0, 1.0)

    @staticmethod
    def _outputs(requests: list[AdRequest], pctr: np.ndarray, version: str) -> list[Scored]:
        counts = [len(r.candidates) for r in requests]
        candidates = _candidate_scores(requests, counts, pctr)
        out, start = [], 0
        for request, n in zip(requests, counts, strict=True):
            record = CtrScores.model_validate({
                "request_id": request.request_id, "candidates": candidates[start : start + n],
                "model_version": version, "event_ts_ms": request.ts_ms,
            })
            out.append(Scored([Output(record, key=request.request_id)]))
            start += n
        return out


def _candidate_scores(requests: list[AdRequest], counts: list[int], pctr: np.ndarray) -> list[dict[str, object]]:
    """The ``CandidateScore`` fields of every candidate of the batch, ranked per request in one sort.

    Plain dicts, validated with their ``CtrScores`` in one call: cheaper than a model per candidate,
    even an unvalidated ``model_construct`` one (Python code, slower than pydantic-core's validation).
    """
    bids = [c.bid for r in requests for c in r.candidates]
    ev, ranks = batch_expected_value_ranks(np.asarray(bids, dtype=np.float64), pctr, counts)
    ad_ids = [c.ad_id for r in requests for c in r.candidates]
    return [{"ad_id": a, "pctr": p, "bid": b, "expected_value": e, "rank": k}
            for a, p, b, e, k in zip(ad_ids, pctr.tolist(), bids, ev.tolist(), ranks.tolist(), strict=True)]
