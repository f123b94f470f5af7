"""The recommendation scorer: per-user history in the state store, one ONNX call per batch.

Per micro-batch: each event updates its user's history (in order, so two events of one user
in a batch see each other), users with enough history are scored together in one padded
graph call, purchased items (outside repeat-purchase categories) and business-filtered items
are masked out and the top K taken inside that call (the head of
:mod:`services.recommendation.head`, appended to each version's graph at load), so the graph
returns K items per user rather than a logit per catalogue item. Users with too little history
get the most popular allowed items of the session's category instead (``cold_start=true``).
The records are encoded in bulk from columns (:class:`~shared.schemas.rows.RowEncoder`).

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
from typing import Any, ClassVar, NamedTuple

import numpy as np
import onnx
from pydantic import BaseModel

from services.recommendation.catalog import BusinessFilters, ItemCatalog
from services.recommendation.coverage import WindowCoverage
from services.recommendation.features import append_event, empty_history, record_purchase, sequence_of
from services.recommendation.head import INPUTS, OUTPUTS, append_top_k
from services.recommendation.ranker import OnnxRanker
from services.recommendation.ranker import check_manifest as check_preprocessing
from services.recommendation.settings import RecommendationSettings
from shared.agreement import AgreementView
from shared.models.manifest import ModelManifest
from shared.models.providers import CPU
from shared.models.slot import GraphTransform, LoadedModel
from shared.runtime.config import ConfigSource, StaticConfig
from shared.runtime.metrics import BusinessMetrics
from shared.runtime.model_scorer import ModelScorer
from shared.runtime.scorer import Event, LoadContext, Output, Rejected, Scored, ScoreResult
from shared.runtime.state import StateStore
from shared.schemas.clickstream import ClickEvent, RecoScores
from shared.schemas.rows import Constant, RowEncoder

logger = logging.getLogger(__name__)

COVERAGE_WINDOW = 1000
"""Recommendation lists the K-coverage metric looks back over."""

FILTERS_KEY = "filters"

_NOTHING: frozenset[int] = frozenset()
Items = Sequence[Mapping[str, int | float]]
"""One recommendation list: ``ScoredItem`` fields per item, best first."""
ENCODER = RowEncoder(RecoScores)


class _Plan(NamedTuple):
    """What one event needs for its recommendation, after its history update (a NamedTuple: one
    per event, and a frozen dataclass's ``__init__`` costs four times as much)."""

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
        self._recommended: list[Items] = []
        """The lists of the last ``score()``, for :meth:`record_business_metrics` (the records are bytes)."""

    def on_load(self, context: LoadContext) -> None:
        if context.state is not None:
            self._state = context.state
        self._config = context.config

    def check_manifest(self, manifest: ModelManifest) -> None:
        check_preprocessing(manifest)

    def graph_transform(self) -> GraphTransform:
        return self._with_top_k

    def _with_top_k(self, manifest: ModelManifest, graph: onnx.ModelProto) -> onnx.ModelProto:
        pre = manifest.preprocessing
        return append_top_k(graph, num_items=int(pre["num_items"]), offset=int(pre["item_id_offset"]),
                            k=self.settings.top_k)

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
        """K-coverage: distinct items among the last ``COVERAGE_WINDOW`` recommendation lists.

        Called right after each successful ``score()`` with its results; the lists are taken once."""
        recommended, self._recommended = self._recommended, []
        for items in recommended:
            self._coverage.add(int(i["item_id"]) for i in items)
        if self._catalog is not None and len(self._coverage):
            metrics.coverage.labels(service).set(self._coverage.distinct / max(self._catalog[1].num_items, 1))

    def agreement_view(self, output: dict[str, Any]) -> AgreementView | None:
        """Each listed item's score, the first item, and the list (top-K overlap)."""
        items = [str(i["item_id"]) for i in output["items"]]
        return AgreementView(scores={str(i["item_id"]): i["score"] for i in output["items"]},
                             decision=items[0] if items else None, ranking=items)

    def predict(self, batch: Sequence[Event[ClickEvent]]) -> Sequence[ScoreResult]:
        loaded = self.slot.current
        version = loaded.manifest.version
        catalog = self._catalog_of(loaded)
        plans = self._plan(batch, catalog, version)
        allowed = catalog.allowed(self.filters())
        scored = [p for p in plans if isinstance(p, _Plan)]
        ranked = iter(self._rank(loaded, [p for p in scored if not p.cold], allowed, catalog))
        # Cold users of one category get the same list: rank it once per batch.
        cold_items = functools.cache(functools.partial(self._cold_items, catalog, allowed))
        lists: list[Items] = [
            cold_items(p.event.category or catalog.category_of(p.event.item_id), p.exclude) if p.cold else next(ranked)
            for p in scored
        ]
        encoded = iter(self._encode(scored, lists, version))
        self._recommended = lists
        return [plan if isinstance(plan, Rejected) else Scored([Output(value=next(encoded))]) for plan in plans]

    def _catalog_of(self, loaded: LoadedModel) -> ItemCatalog:
        if self._catalog is None or self._catalog[0] != loaded.manifest.sha256:
            self._catalog = (loaded.manifest.sha256, ItemCatalog(loaded.manifest.preprocessing))
        return self._catalog[1]

    def _plan(self, batch: Sequence[Event[ClickEvent]], catalog: ItemCatalog, version: str) -> list[_Plan | Rejected]:
        """Update histories in event order; write each touched key back once."""
        touched: dict[tuple[int, str], dict[str, Any]] = {}
        plans: list[_Plan | Rejected] = []
        s = self.settings  # read once per batch, not per event
        reject, weights, history_len, purchased_len = (s.unknown_item == "reject", s.event_weights, s.history_len,
                                                       s.purchased_len)
        extra, min_history = s.repeat_purchase_categories, s.cold_start_min_history
        state, tokens_of = self._state, catalog.tokens
        for ev in batch:
            e = ev.value
            if reject and catalog.token(e.item_id) is None:
                detail = f"item_id {e.item_id} is not in model {version}'s catalogue of {catalog.num_items} items"
                plans.append(Rejected("unknown_item", detail))
                continue
            slot = (ev.partition, ev.key or e.user_id)
            history = touched.get(slot) or state.get(*slot) or empty_history()
            history = append_event(history, e.item_id, weights.get(e.event_type, 1), history_len)
            if e.event_type == "purchase":
                history = record_purchase(history, e.item_id, purchased_len)
            touched[slot] = history
            tokens = tokens_of(sequence_of(history))
            purchased = history["purchased"]
            exclude = frozenset(i for i in purchased if not catalog.repeatable(i, extra)) if purchased else _NOTHING
            plans.append(_Plan(e, tokens, exclude, len(tokens) < min_history))
        for (partition, key), value in touched.items():
            state.put(partition, key, value)
        return plans

    def _rank(self, loaded: LoadedModel, plans: list[_Plan], allowed: np.ndarray, catalog: ItemCatalog) -> list[Items]:
        """The top K of each warm user from the graph (filtered and bought items masked there)."""
        if not plans:
            return []
        # Groups of similar lengths pay on CPU; on a GPU a call costs more than padding.
        ranker = OnnxRanker(loaded.model, int(loaded.manifest.preprocessing["max_len"]),
                            by_length=loaded.model.provider == CPU)
        excluded = [catalog.tokens(p.exclude) if p.exclude else () for p in plans]
        items, scores = ranker.top([p.tokens for p in plans], allowed, excluded)
        rows = zip(items.tolist(), scores.tolist(), strict=True)
        finite = np.isfinite(scores)
        if finite.all():
            return [[{"item_id": i, "score": v} for i, v in zip(ids, vals, strict=True)] for ids, vals in rows]
        # Fewer than K items passed the masks: the rest came back as -inf.
        return [
            [{"item_id": i, "score": v} for i, v, ok in zip(ids, vals, oks, strict=True) if ok]
            for (ids, vals), oks in zip(rows, finite.tolist(), strict=True)
        ]

    def _cold_items(self, catalog: ItemCatalog, allowed: np.ndarray, category: str | None,
                    exclude: frozenset[int]) -> Items:
        """The popular allowed items of ``category`` for a user without enough history, scored 1/rank."""
        items = catalog.popular_in(category, self.settings.top_k, allowed, exclude)
        return tuple({"item_id": item, "score": 1.0 / (rank + 1)} for rank, item in enumerate(items))

    def _encode(self, plans: list[_Plan], lists: list[Items], version: str) -> list[bytes]:
        """The ``RecoScores`` records of ``plans``, from columns."""
        events = [p.event for p in plans]
        return ENCODER.encode(len(plans), {
            "user_id": [e.user_id for e in events],
            "items": lists,
            "k": Constant(self.settings.top_k),
            "model_version": Constant(version),
            "source": [{"ts_ms": e.ts_ms, "item_id": e.item_id, "event_type": e.event_type, "session_id": e.session_id}
                       for e in events],
            "cold_start": [p.cold for p in plans],
        })  # fmt: skip
