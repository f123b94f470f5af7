"""The pricing scorer: guardrails over the batch, one demand-model call, decisions out.

Per micro-batch, as columns: read each SKU's history from the state store (for the per-day
limit and the reference price), apply the operator controls from the config topic (kill switch,
overrides; the runtime reads the topic and hands it over as ``LoadContext.config``), build the
guardrail intervals, then optimise every priceable request in ONE ONNX call. Outputs a
:class:`PricingDecision` on the main topic and a :class:`PriceForecast` on the forecast topic,
encoded in bulk; an unpriceable request is rejected.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from services.pricing.batch import RequestColumns
from services.pricing.decisions import encode_outputs, reasons
from services.pricing.features import ContextColumns, context_columns
from services.pricing.guardrails import BIT, InputColumns, LimitColumns, hard_within, limit_columns
from services.pricing.history import History, read_history, write_history
from services.pricing.model import INPUTS, OUTPUTS, LoadedDemandModel, check_feature_spec
from services.pricing.optimizer import ChoiceColumns, ProblemColumns, optimise_columns
from services.pricing.overrides import ControlColumns, control_columns
from services.pricing.settings import PricingSettings
from shared.agreement import AgreementView
from shared.models.manifest import ModelManifest
from shared.runtime.config import ConfigSource, StaticConfig
from shared.runtime.metrics import BusinessMetrics, observe_many
from shared.runtime.model_scorer import ModelScorer
from shared.runtime.scorer import Event, LoadContext, Output, Rejected, Scored, ScoreResult
from shared.runtime.state import StateStore
from shared.schemas.pricing import PricingDecision, PricingRequest

logger = logging.getLogger(__name__)

PRICE_KEPT = 1e-6
"""Relative change under which a recommended price keeps the current one (the monitor's tolerance)."""


class PricingScorer(ModelScorer[PricingRequest, PricingSettings]):
    input_schema: ClassVar[type[BaseModel]] = PricingRequest
    output_schema: ClassVar[type[BaseModel]] = PricingDecision
    stateful: ClassVar[bool] = True
    model_inputs = INPUTS
    model_outputs = OUTPUTS

    def __init__(self, settings: PricingSettings) -> None:
        super().__init__(settings, settings.model_name)
        self._config: ConfigSource = StaticConfig()
        self._state: StateStore | None = None
        self._changes: list[float] = []
        """Relative price changes of the last successful ``score()`` (its business metrics)."""

    def on_load(self, context: LoadContext) -> None:
        self._state = context.state
        self._config = context.config

    def check_manifest(self, manifest: ModelManifest) -> None:
        check_feature_spec(manifest)

    def warm_up_dims(self) -> Mapping[str, int]:
        return {"candidates": self.settings.grid_points + 1}

    def extra_output_topics(self) -> Sequence[str]:
        return (self.settings.forecast_topic,)

    def key_of(self, event: PricingRequest) -> str | None:
        return event.sku

    def record_business_metrics(
        self, service: str, results: Sequence[ScoreResult], metrics: BusinessMetrics
    ) -> None:
        """Called right after each successful ``score()``: its outputs are bytes, so the price
        changes come from the columns that call kept."""
        observe_many(metrics.price_change.labels(service), self._changes)

    def agreement_view(self, output: dict[str, Any]) -> AgreementView | None:
        """The recommended price relative to the current one, and its direction (raise, lower, keep)."""
        ratio = output["recommended_price"] / output["current_price"]
        direction = "raise" if ratio > 1 + PRICE_KEPT else "lower" if ratio < 1 - PRICE_KEPT else "keep"
        return AgreementView(scores={"": ratio}, decision=direction)

    def predict(self, batch: Sequence[Event[PricingRequest]]) -> Sequence[ScoreResult]:
        loaded = self.slot.current  # one version for the whole batch, even across a swap
        req = RequestColumns.of(batch)
        controls = control_columns(req.sku, self._config, self.settings.guardrails)
        history = read_history(self._state, req.partition, req.sku, req.ts_ms, req.current_price)
        inputs = InputColumns(
            current_price=req.current_price, unit_cost=req.unit_cost, stock=req.stock, recent_units=req.recent_units,
            floor=np.fmax(req.floor, controls.floor), ceiling=np.fmin(req.ceiling, controls.ceiling),
            day_anchor=history.anchor,
        )  # fmt: skip
        limits = _controlled(limit_columns(inputs, controls.guardrails), inputs, controls)
        priced = np.flatnonzero(limits.feasible)
        problems = self._problems(req, history, limits, controls, priced)
        choice = optimise_columns(problems, LoadedDemandModel(loaded), self.settings.grid_points,
                                  self.settings.objective) if len(priced) else None  # fmt: skip
        self._changes = []
        results = self._scored(req, priced, choice, controls, loaded.manifest.version) if choice is not None else []
        if len(priced) < len(batch):
            results = _with_rejections(results, limits)
        # One write per SKU, only once the model succeeded (the runtime commits them with the batch).
        if self._state is not None:
            price = choice.price if choice is not None else np.empty(0)
            write_history(self._state, history, req.current_price, req.ts_ms, priced, price)
        return results

    def _scored(
        self, req: RequestColumns, priced: npt.NDArray[np.intp], choice: ChoiceColumns, controls: ControlColumns,
        version: str,
    ) -> list[ScoreResult]:
        """The decision and the forecast of each priced row, and the batch's price changes for the metrics."""
        sku = [req.sku[i] for i in priced.tolist()]
        current = req.current_price[priced]
        reason = reasons(controls.take(priced), choice.bound_by, self.settings)
        out = encode_outputs(sku, current, req.unit_cost[priced], req.ts_ms[priced], choice, reason, version)
        self._changes = (out.recommended / current - 1.0).tolist()
        topic = self.settings.forecast_topic
        return [
            Scored((Output(decision, key), Output(forecast, key, topic)))
            for key, decision, forecast in zip(sku, out.decisions, out.forecasts, strict=True)
        ]

    def _problems(
        self, req: RequestColumns, history: History, limits: LimitColumns, controls: ControlColumns,
        rows: npt.NDArray[np.intp],
    ) -> ProblemColumns:
        """The priceable ``rows`` as the optimiser sees them. ``recent_units`` were sold at the SKU's
        previous price, so prices are relative to it; without history the current price stands in."""
        ref = np.where(history.previous > 0, history.previous, req.current_price)[rows]
        context = context_columns(ContextColumns(
            ref_price=ref, recent_units=req.recent_units[rows], recent_price=ref,
            competitor_price=req.competitor_price[rows], flags=req.flags[rows], week_of_year=req.week_of_year[rows],
            bucket=req.bucket[rows],
        ))  # fmt: skip
        return ProblemColumns(
            context=context, ref_price=ref, current_price=req.current_price[rows], unit_cost=req.unit_cost[rows],
            limits=limits.take(rows),
            ending=np.where(controls.kill, np.nan, controls.ending)[rows],
        )  # fmt: skip


def _controlled(limits: LimitColumns, inputs: InputColumns, controls: ControlColumns) -> LimitColumns:
    """The operator's kill switch holds the current price, else a fixed price pins it (within floor,
    ceiling and minimum margin). Applied after the guardrails: an unpriceable request stays so."""
    kill, fixed = controls.kill, ~np.isnan(controls.fixed_price)
    pinned = kill | fixed
    if not pinned.any():
        return limits
    price = np.where(kill, inputs.current_price, hard_within(controls.fixed_price, inputs, controls.guardrails))
    names = np.where(kill, BIT["kill_switch"], BIT["override"])
    return limits._replace(
        lo=np.where(pinned, price, limits.lo), hi=np.where(pinned, price, limits.hi),
        lo_by=np.where(pinned, names, limits.lo_by), hi_by=np.where(pinned, names, limits.hi_by),
        relaxed=np.where(pinned, 0, limits.relaxed),
    )  # fmt: skip


def _with_rejections(scored: list[ScoreResult], limits: LimitColumns) -> list[ScoreResult]:
    """The batch's results in order: ``scored`` for the feasible rows, "unpriceable" for the others."""
    results = iter(scored)
    return [
        next(results) if feasible else Rejected("unpriceable", limits.infeasible_reason(row))
        for row, feasible in enumerate(limits.feasible.tolist())
    ]
