"""The ad CTR scorer: every candidate of every request in a micro-batch in one ONNX call."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any, ClassVar, cast

import numpy as np
from pydantic import BaseModel

from services.ad_ctr.cache import EmbeddingCache
from services.ad_ctr.features import BucketMemo, CandidateColumns, encode_columns, encode_titles
from services.ad_ctr.model_io import CTR_INPUTS, CTR_OUTPUTS, CtrModelMeta, load_text_encoder
from services.ad_ctr.ranking import batch_expected_value_ranks
from services.ad_ctr.settings import AdCtrSettings
from shared.agreement import AgreementView
from shared.errors import ScoringError
from shared.models.manifest import ModelManifest
from shared.models.repository import ModelRepository
from shared.models.session import OnnxModel
from shared.runtime.metrics import BusinessMetrics, observe_many
from shared.runtime.model_scorer import ModelScorer
from shared.runtime.scorer import Event, Output, Rejected, Scored, ScoreResult
from shared.schemas.ads import AdRequest, CtrScores
from shared.schemas.rows import Constant, RowEncoder

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
        self._caches: dict[str, EmbeddingCache] = {}
        """CTR version → its text encoder's embeddings; two at most (the live one and a candidate's)."""
        self._text: dict[str, tuple[CtrModelMeta, OnnxModel, BucketMemo]] = {}
        """CTR version -> its manifest meta, pinned text encoder (loaded beside it) and hashed-id memo."""
        self._serving_version: str | None = None
        self._encoder = RowEncoder(CtrScores)
        self._last_pctr = _NO_SCORES
        """The pCTRs of the last successful ``score()``, for the business metrics."""

    def warm_up_dims(self) -> Mapping[str, int]:
        return {"fields": 1, "text_dim": 1}

    def check_manifest(self, manifest: ModelManifest) -> None:
        # Runs while a CTR version is being prepared (also in the slot's loader thread), so the
        # encoder it needs is ready before the version can serve; a missing one refuses it.
        meta = CtrModelMeta.of(manifest)
        encoder = load_text_encoder(ModelRepository(self.settings.models_dir), meta,
                                    self.settings.execution_providers, self.settings.intra_op_threads)
        self._text[manifest.version] = (meta, encoder, BucketMemo(meta.spec))

    def key_of(self, event: AdRequest) -> str | None:
        return event.request_id

    def check(self, request: AdRequest) -> Rejected | None:
        """Business limits beyond the schema (which already refuses empty lists and bad bids)."""
        n = len(request.candidates)
        if n == 0:
            return Rejected("no_candidates", "the request has no candidate ads")
        if n > self.settings.max_candidates:
            return Rejected("too_many_candidates", f"{n} candidates > max_candidates={self.settings.max_candidates}")
        bad = [c["ad_id"] for c in request.candidates if not (math.isfinite(c["bid"]) and c["bid"] > 0)]
        if bad:
            return Rejected("invalid_bid", f"bids must be finite and > 0; bad for ads {bad[:5]}")
        return None

    def record_business_metrics(
        self, service: str, results: Sequence[ScoreResult], metrics: BusinessMetrics
    ) -> None:
        # The outputs are encoded bytes: the pCTRs come from the last score() (the runtime calls
        # this right after each successful one).
        observe_many(metrics.score.labels(service), self._last_pctr.tolist())

    def _cache_for(self, version: str) -> EmbeddingCache:
        if self._serving_version is None:
            self._caches[version] = self.cache  # the first version takes the cache made at construction
        cache = self._caches.pop(version, None) or EmbeddingCache(self.settings.embedding_cache_size)
        self._caches[version] = cache
        while len(self._caches) > 2:  # insertion order: the least recently served goes
            del self._caches[next(iter(self._caches))]
        return cache

    def agreement_view(self, output: dict[str, Any]) -> AgreementView | None:
        """Each ad's pCTR, the ad ranked first (the one the shop shows), and the ranking."""
        ranked = sorted(output["candidates"], key=lambda c: c["rank"])
        ids = [c["ad_id"] for c in ranked]
        return AgreementView(scores={c["ad_id"]: c["pctr"] for c in ranked}, decision=ids[0] if ids else None,
                             ranking=ids)

    def predict(self, batch: Sequence[Event[AdRequest]]) -> Sequence[ScoreResult]:
        loaded = self.slot.current
        meta, encoder, memo = self._text[loaded.manifest.version]
        if loaded.manifest.version != self._serving_version:
            # embeddings of another version's text encoder do not fit this graph; a shadow or canary
            # alternates two versions per batch, so each keeps its own cache rather than clearing one
            self.cache = self._cache_for(loaded.manifest.version)
            self._serving_version = loaded.manifest.version
        self._last_pctr = _NO_SCORES
        if not batch:
            return []
        requests = [e.value for e in batch]
        columns = CandidateColumns.of(requests)
        results = self._checked(requests, columns)
        if results:
            accepted = [r for i, r in enumerate(requests) if i not in results]
            if not accepted:
                return [results[i] for i in range(len(batch))]
            requests, columns = accepted, CandidateColumns.of(accepted)
        pctr = self._predict(columns, meta, encoder, memo, loaded.model)
        scored = iter(self._outputs(requests, columns, pctr, loaded.manifest.version))
        out = [results[i] if i in results else next(scored) for i in range(len(batch))]
        self._last_pctr = pctr
        return out

    def _checked(self, requests: list[AdRequest], columns: CandidateColumns) -> dict[int, ScoreResult]:
        """:meth:`check` of the requests that break a limit (found with column arithmetic), by index."""
        counts = columns.counts
        bad_bid = ~(np.isfinite(columns.bids) & (columns.bids > 0))
        suspect = (counts == 0) | (counts > self.settings.max_candidates)
        if bad_bid.any():
            suspect |= np.bincount(np.repeat(np.arange(len(counts)), counts)[bad_bid], minlength=len(counts)) > 0
        found = {int(i): self.check(requests[i]) for i in np.flatnonzero(suspect)}
        return {i: r for i, r in found.items() if r is not None}

    def _predict(self, columns: CandidateColumns, meta: CtrModelMeta, encoder: OnnxModel, memo: BucketMemo,
                 model: OnnxModel) -> np.ndarray:
        def encode(titles: Sequence[str]) -> np.ndarray:
            ids, mask = encode_titles(meta.text, titles)
            return encoder.run({"token_ids": ids, "token_mask": mask})["embedding"]

        creatives = cast(list[str], columns.ads["creative_id"])
        text = self.cache.lookup(creatives, columns.titles, encode)
        out = model.run({"sparse": encode_columns(meta.spec, columns, memo), "text_emb": text})
        pctr = np.clip(out["pctr"].astype(np.float64), 0.0, 1.0)
        if not np.isfinite(pctr).all():
            raise ScoringError("the CTR model returned a non-finite pCTR")
        return pctr

    def _outputs(self, requests: list[AdRequest], columns: CandidateColumns, pctr: np.ndarray,
                 version: str) -> list[Scored]:
        """Every request's ``CtrScores``, encoded from the batch's columns in one call."""
        ids = list(map(attrgetter("request_id"), requests))
        rows = self._encoder.encode(len(requests), {
            "request_id": ids,
            "candidates": _candidate_scores(columns, pctr),
            "model_version": Constant(version),
            "event_ts_ms": list(map(attrgetter("ts_ms"), requests)),
        })
        return [Scored([Output(row, key=key)]) for row, key in zip(rows, ids, strict=True)]


_NO_SCORES = np.empty(0, dtype=np.float64)


def _candidate_scores(columns: CandidateColumns, pctr: np.ndarray) -> list[list[dict[str, object]]]:
    """Each request's ``CandidateScore`` fields (its slice of the batch's columns), ranked in one sort."""
    ev, ranks = batch_expected_value_ranks(columns.bids, pctr, columns.counts.tolist())
    flat = [{"ad_id": a, "pctr": p, "bid": b, "expected_value": e, "rank": k}
            for a, p, b, e, k in zip(columns.ads["ad_id"], pctr.tolist(), columns.bids.tolist(), ev.tolist(),
                                     ranks.tolist(), strict=True)]
    ends = np.cumsum(columns.counts).tolist()
    return [flat[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]
