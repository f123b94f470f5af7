"""The pricing scorer: guardrails per request, one batched demand-model call, decisions out.

Per micro-batch: read each SKU's last price from the state store (for the per-day limit),
apply the operator controls from the config topic (kill switch, overrides; the runtime reads the
topic and hands it over as ``LoadContext.config``), build the
guardrail interval, then optimise every request in ONE ONNX call. Outputs a
:class:`PricingDecision` on the main topic and a :class:`PriceForecast` on the forecast topic.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

from services.pricing.decisions import build_outputs, context_of
from services.pricing.guardrails import Infeasible, PriceInputs, PriceLimits, hard_bounds, price_limits
from services.pricing.model import INPUTS, OUTPUTS, LoadedDemandModel, check_feature_spec
from services.pricing.optimizer import PricingProblem, optimise
from services.pricing.overrides import Controls, controls_for, parse_global
from services.pricing.settings import PricingSettings
from shared.models.manifest import ModelManifest
from shared.runtime.config import ConfigSource, StaticConfig
from shared.runtime.metrics import BusinessMetrics, observe_many
from shared.runtime.model_scorer import ModelScorer
from shared.runtime.scorer import Event, LoadContext, Rejected, ScoreResult, outputs_of
from shared.runtime.state import StateStore
from shared.schemas.pricing import PricingDecision, PricingRequest

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000


def utc_day(ts_ms: int) -> str:
    return _utc_date(ts_ms // DAY_MS)


@functools.lru_cache(maxsize=64)
def _utc_date(day: int) -> str:
    # A batch spans one or two UTC days: format each day once, not a datetime per request.
    return dt.datetime.fromtimestamp(day * DAY_MS // 1000, tz=dt.UTC).date().isoformat()


def _day_anchor(req: PricingRequest, state: dict[str, Any] | None) -> tuple[float, str]:
    """The first price seen today (the daily change limit is around it) and today's date."""
    day = utc_day(req.ts_ms)
    if state and state.get("day") == day:
        return float(state["anchor"]), day
    return req.current_price, day


def _write(written: dict[tuple[int, str], dict[str, Any]], key: tuple[int, str], value: dict[str, Any]) -> None:
    # Re-insert, so the store receives the SKUs in the order of their last write, as before.
    written.pop(key, None)
    written[key] = value


def _pinned(price: float, name: str) -> PriceLimits:
    return PriceLimits(price, price, (name,), (name,))


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
        changes = [d.recommended_price / d.current_price - 1 for d in outputs_of(results, PricingDecision)]
        observe_many(metrics.price_change.labels(service), changes)

    def score(self, batch: Sequence[Event[PricingRequest]]) -> Sequence[ScoreResult]:
        loaded = self.slot.current  # one version for the whole batch, even across a swap
        version = loaded.manifest.version
        results: list[ScoreResult | None] = [None] * len(batch)
        problems: list[tuple[int, PricingProblem, Controls]] = []
        written: dict[tuple[int, str], dict[str, Any]] = {}  # the batch's new state per SKU
        glob = parse_global(self._config)  # one read of the kill switch per batch
        for i, event in enumerate(batch):
            controls = controls_for(event.value.sku, self._config, self.settings.guardrails, glob)
            key = (event.partition, event.value.sku)
            state = written[key] if key in written else self._read(key)
            anchor, day = _day_anchor(event.value, state)
            previous = float(state["seen_price"]) if state and "seen_price" in state else None
            # Seen before optimising, so a second request for the SKU in this batch sees it.
            seen = {"day": day, "anchor": anchor, "seen_price": event.value.current_price}
            _write(written, key, {**(state or {}), **seen})
            try:
                problems.append((i, self._problem(event.value, controls, anchor, previous), controls))
            except Infeasible as exc:
                results[i] = Rejected("unpriceable", str(exc))
        model = LoadedDemandModel(loaded)
        choices = optimise([p for _, p, _ in problems], model, self.settings.grid_points, self.settings.objective)
        for (i, problem, controls), choice in zip(problems, choices, strict=True):
            req = batch[i].value
            results[i] = build_outputs(req, problem, controls, choice, version, self.settings)
            key = (batch[i].partition, req.sku)
            _write(written, key, {**written[key], "last_price": choice.price, "ts_ms": req.ts_ms})
        # One write per SKU, only once the model succeeded (the runtime commits them with the batch).
        if self._state is not None:
            for (partition, sku), value in written.items():
                self._state.put(partition, sku, value)
        return [r for r in results if r is not None]

    def _read(self, key: tuple[int, str]) -> dict[str, Any] | None:
        return self._state.get(*key) if self._state is not None else None

    def _problem(
        self, req: PricingRequest, controls: Controls, anchor: float, previous: float | None
    ) -> PricingProblem:
        floor = max(filter(None, (req.floor, controls.floor)), default=None)
        ceiling = min(filter(None, (req.ceiling, controls.ceiling)), default=None)
        inputs = PriceInputs(req.current_price, req.unit_cost, req.stock, req.recent_units, floor, ceiling, anchor)
        limits = price_limits(inputs, controls.guardrails)  # raises Infeasible before any override
        if controls.kill_switch is not None:
            limits = _pinned(req.current_price, "kill_switch")
        elif controls.fixed_price is not None:
            limits = _pinned(_within_hard(controls.fixed_price, inputs, controls), "override")
        ending = controls.guardrails.price_ending if controls.kill_switch is None else None
        return PricingProblem(context_of(req, previous), inputs, limits, ending)


def _within_hard(price: float, inputs: PriceInputs, controls: Controls) -> float:
    """An operator's fixed price still respects floor, ceiling and minimum margin."""
    lower, upper = hard_bounds(inputs, controls.guardrails)
    return min(max(price, *lower.values()), *upper.values())
