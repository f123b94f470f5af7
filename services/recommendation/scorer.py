"""The recommendation scorer: per-user history in the state store, one ONNX call per batch.

Per micro-batch: each event updates its user's history (in order, so two events of one user
in a batch see each other), users with enough history are scored together in one padded
graph call, purchased items (outside repeat-purchase categories) and business-filtered items
are masked out, and the top K are taken with ``argpartition``. Users with too little history
get the most popular allowed items of the session's category instead (``cold_start=true``).

History writes are staged by the runtime and applied only when ``score`` returns, so a batch
retried after a model failure is appended once. Business filters come from the config topic's
``filters`` key (read by the runtime, handed over as ``LoadContext.config``), else from settings.

An item id outside the model's catalogue is rejected to the DLQ as ``unknown_item`` (or, with
``unknown_item=ignore``, kept in the history and skipped by the model).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from services.recommendation.catalog import BusinessFilters, ItemCatalog
from services.recommendation.coverage import WindowCoverage
from services.recommendation.features import append_event, empty_history, record_purchase, sequence_of
from services.recommendation.ranker import INPUTS, OUTPUTS, OnnxRanker, top_k
from services.recommendation.ranker import check_manifest as check_preprocessing
from services.recommendation.settings import RecommendationSettings
from shared.models.manifest import ModelManifest
from shared.models.slot import LoadedModel
from shared.runtime.config import ConfigSource, StaticConfig
from shared.runtime.metrics import BusinessMetrics
from shared.runtime.model_scorer import ModelScorer
from shared.runtime.scorer import Event, LoadContext, Output, Rejected, Scored, ScoreResult, outputs_of
from shared.runtime.state import StateStore
from shared.schemas.clickstream import ClickEvent, RecoScores, ScoredItem

logger = logging.getLogger(__name__)

COVERAGE_WINDOW = 1000
"""Recommendation lists the K-coverage metric looks back over."""

FILTERS_KEY = "filters"


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one event needs for its recommendation, after its history update."""

    event: ClickEvent
    tokens: list[int]
    exclude: frozenset[int]
    cold: bool


class RecommendationScorer(ModelScorer[ClickEvent, RecommendationSettings]):
    input_schema: ClassVar[type[BaseModel]] = ClickEvent
    output_schema: ClassVar[type[BaseModel]] = RecoScores
    stateful: ClassVar[bool] = True
    model_inputs = INPUTS
    model_outputs = OUTPUTS

    def __init__(self, settings: RecommendationSettings) -> None:
        super().__init__(settings, settings.model_name)
        self._state = StateStore()
        self._config: ConfigSource = StaticConfig()
        self._fallback = BusinessFilters(frozenset(settings.out_of_stock), frozenset(settings.blocked_categories))
        self._catalog: tuple[str, ItemCatalog] | None = None
        self._coverage = WindowCoverage(COVERAGE_WINDOW)

    def on_load(self, context: LoadContext) -> None:
        if context.state is not None:
            self._state = context.state
        self._config = context.config

    def check_manifest(self, manifest: ModelManifest) -> None:
        check_preprocessing(manifest)

    def warm_up_dims(self) -> Mapping[str, int]:
        return {"seq": 8}

    def key_of(self, event: ClickEvent) -> str | None:
        return event.user_id

    def filters(self) -> BusinessFilters:
        """The business filters in force: the config topic's ``filters`` key, else settings."""
        value = self._config.get(FILTERS_KEY)
        return BusinessFilters.from_json(value, self._fallback)

    def record_business_metrics(
        self, service: str, results: Sequence[ScoreResult], metrics: BusinessMetrics
    ) -> None:
        """K-coverage: distinct items among the last ``COVERAGE_WINDOW`` recommendation lists."""
        for scores in outputs_of(results, RecoScores):
            self._coverage.add(i.item_id for i in scores.items)
        if self._catalog is not None and len(self._coverage):
            metrics.coverage.labels(service).set(self._coverage.distinct / max(self._catalog[1].num_items, 1))

    def score(self, batch: Sequence[Event[ClickEvent]]) -> Sequence[ScoreResult]:
        loaded = self.slot.current
        version = loaded.manifest.version
        catalog = self._catalog_of(loaded)
        plans = self._plan(batch, catalog, version)
        allowed = catalog.allowed(self.filters())
        warm = [p for p in plans if isinstance(p, _Plan) and not p.cold]
        ranker = OnnxRanker(loaded.model, int(loaded.manifest.preprocessing["max_len"]))
        ranked = iter(self._rank(ranker.scores([p.tokens for p in warm]), warm, allowed, catalog))
        # Cold users of one category get the same list: rank and validate it once per batch.
        cold_items = functools.cache(functools.partial(self._cold_items, catalog, allowed))
        results: list[ScoreResult] = []
        for plan in plans:
            if isinstance(plan, Rejected):
                results.append(plan)
            elif plan.cold:
                category = plan.event.category or catalog.category_of(plan.event.item_id)
                results.append(self._output(plan, cold_items(category, plan.exclude), True, version))
            else:
                results.append(self._output(plan, next(ranked), False, version))
        return results

    def _catalog_of(self, loaded: LoadedModel) -> ItemCatalog:
        if self._catalog is None or self._catalog[0] != loaded.manifest.sha256:
            self._catalog = (loaded.manifest.sha256, ItemCatalog(loaded.manifest.preprocessing))
        return self._catalog[1]

    def _plan(self, batch: Sequence[Event[ClickEvent]], catalog: ItemCatalog, version: str) -> list[_Plan | Rejected]:
        """Update histories in event order; write each touched key back once."""
        touched: dict[tuple[int, str], dict[str, Any]] = {}
        plans: list[_Plan | Rejected] = []
        for ev in batch:
            e = ev.value
            if catalog.token(e.item_id) is None and self.settings.unknown_item == "reject":
                detail = f"item_id {e.item_id} is not in model {version}'s catalogue of {catalog.num_items} items"
                plans.append(Rejected("unknown_item", detail))
                continue
            slot = (ev.partition, ev.key or e.user_id)
            history = touched.get(slot) or self._state.get(*slot) or empty_history()
            touched[slot] = history = self._update(history, e)
            plans.append(self._plan_one(e, history, catalog))
        for (partition, key), value in touched.items():
            self._state.put(partition, key, value)
        return plans

    def _update(self, history: dict[str, Any], e: ClickEvent) -> dict[str, Any]:
        weight = self.settings.event_weights.get(e.event_type, 1)
        history = append_event(history, e.item_id, weight, self.settings.history_len)
        if e.event_type == "purchase":
            history = record_purchase(history, e.item_id, self.settings.purchased_len)
        return history

    def _plan_one(self, e: ClickEvent, history: dict[str, Any], catalog: ItemCatalog) -> _Plan:
        tokens = catalog.tokens(sequence_of(history))
        extra = self.settings.repeat_purchase_categories
        exclude = frozenset(i for i in history.get("purchased", []) if not catalog.repeatable(i, extra))
        return _Plan(e, tokens, exclude, len(tokens) < self.settings.cold_start_min_history)

    def _rank(
        self, scores: np.ndarray, plans: list[_Plan], allowed: np.ndarray, catalog: ItemCatalog
    ) -> list[list[dict[str, int | float]]]:
        """Mask filtered and purchased items, then top-K per row without a full sort: ``ScoredItem`` fields."""
        if not plans:
            return []
        # ``scores`` is a fresh array (OnnxRanker concatenates the graph's outputs): mask it in place
        # instead of copying all [rows, items] logits.
        np.copyto(scores, -np.inf, where=~allowed)
        excluded = [(row, tok) for row, plan in enumerate(plans) if plan.exclude
                    for tok in catalog.tokens(plan.exclude)]
        if excluded:
            rows, cols = np.asarray(excluded, dtype=np.intp).T
            scores[rows, cols] = -np.inf
        cols, vals = top_k(scores, self.settings.top_k)
        items, finite = (cols - catalog.offset).tolist(), np.isfinite(vals).tolist()
        return [
            [{"item_id": i, "score": v} for i, v, ok in zip(row_items, row_vals, row_ok, strict=True) if ok]
            for row_items, row_vals, row_ok in zip(items, vals.tolist(), finite, strict=True)
        ]

    def _cold_items(self, catalog: ItemCatalog, allowed: np.ndarray, category: str | None,
                    exclude: frozenset[int]) -> tuple[ScoredItem, ...]:
        """The popular allowed items of ``category`` for a user without enough history, scored 1/rank."""
        items = catalog.popular_in(category, self.settings.top_k, allowed, exclude)
        return tuple(ScoredItem(item_id=item, score=1.0 / (rank + 1)) for rank, item in enumerate(items))

    def _output(self, plan: _Plan, items: Sequence[ScoredItem] | Sequence[Mapping[str, int | float]], cold: bool,
                version: str) -> Scored:
        e = plan.event
        # One validation of plain dicts (frozen items pass as they are): cheaper than a model per
        # item, even an unvalidated ``model_construct`` one (Python code, slower than pydantic-core).
        record = RecoScores.model_validate({
            "user_id": e.user_id,
            "items": items,
            "k": self.settings.top_k,
            "model_version": version,
            "source": {"ts_ms": e.ts_ms, "item_id": e.item_id, "event_type": e.event_type, "session_id": e.session_id},
            "cold_start": cold,
        })
        return Scored([Output(value=record)])
