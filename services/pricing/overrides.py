"""Operator controls from the config topic: the kill switch and per-SKU overrides.

Records on the compacted config topic (JSON objects):

* key ``*``: global, e.g. ``{"kill_switch": true, "reason": "incident 42"}``, or guardrail
  defaults such as ``{"max_change_per_decision": 0.05}``;
* key ``<sku>``: that SKU only, e.g. ``{"kill_switch": true}``, ``{"fixed_price": 9.99}`` or
  ``{"floor": 5.0, "ceiling": 12.0, "min_margin": 0.2}``.

A tombstone removes the override. A record that does not validate is ignored with a warning,
so a typo cannot switch pricing off by accident, except that ``"kill_switch": true`` is still
honoured in an otherwise broken record (stopping is always the safe side).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.pricing.guardrails import ConfigColumns, FloatArray, GuardrailConfig
from shared.runtime.config import ConfigSource

logger = logging.getLogger(__name__)

GLOBAL_KEY = "*"
_GUARDRAIL_FIELDS = frozenset(GuardrailConfig.model_fields)


class Override(BaseModel):
    """One config record. Unknown guardrail fields are rejected (``extra="forbid"``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    kill_switch: bool = False
    reason: str = Field("", max_length=200)
    fixed_price: float | None = Field(None, gt=0.0)
    floor: float | None = Field(None, gt=0.0)
    ceiling: float | None = Field(None, gt=0.0)
    min_margin: float | None = None
    max_change_per_decision: float | None = None
    max_change_per_day: float | None = None
    low_stock_units: int | None = None
    low_stock_cover: float | None = None
    price_ending: float | None = None

    def guardrail_fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(exclude_none=True).items() if k in _GUARDRAIL_FIELDS}


class Controls(NamedTuple):
    """The effective operator controls for one SKU."""

    guardrails: GuardrailConfig
    kill_switch: str | None
    """``None`` when off, else a human-readable reason."""
    fixed_price: float | None
    floor: float | None
    ceiling: float | None


_NONE = Override()


def parse_global(source: ConfigSource) -> Override:
    return _parse(source, GLOBAL_KEY)


def _parse(source: ConfigSource, key: str) -> Override:
    raw = source.get(key)
    if raw is None:
        return _NONE
    try:
        return Override.model_validate(raw)
    except ValidationError as exc:
        logger.warning("config override %r ignored: %s", key, exc.errors(include_url=False)[:3])
        # Fail safe: a record that clearly says "stop" is honoured even if the rest is broken.
        if raw.get("kill_switch") is True:
            return Override(kill_switch=True, reason=str(raw.get("reason", "invalid config record"))[:200])
        return _NONE


def _kill_reason(scope: str, override: Override) -> str | None:
    if not override.kill_switch:
        return None
    return f"kill switch on ({scope})" + (f": {override.reason}" if override.reason else "")


def controls_for(sku: str, source: ConfigSource, defaults: GuardrailConfig, glob: Override | None = None) -> Controls:
    """Merge service defaults, the global record and the SKU's record (the SKU wins).

    ``glob`` is the parsed global record when the caller already has it (once per batch).
    """
    glob = _parse(source, GLOBAL_KEY) if glob is None else glob
    return _merge(sku, glob, _parse(source, sku), defaults)


def _merge(sku: str, glob: Override, own: Override, defaults: GuardrailConfig) -> Controls:
    if glob is _NONE and own is _NONE:
        return Controls(defaults, None, None, None, None)
    fields = {**glob.guardrail_fields(), **own.guardrail_fields()}
    try:
        guardrails = GuardrailConfig(**{**defaults.model_dump(), **fields}) if fields else defaults
    except ValidationError as exc:
        logger.warning("guardrail overrides for %r ignored: %s", sku, exc.errors(include_url=False)[:3])
        guardrails = defaults
    return Controls(
        guardrails=guardrails,
        kill_switch=_kill_reason("global", glob) or _kill_reason(f"sku {sku}", own),
        fixed_price=own.fixed_price,
        floor=own.floor,
        ceiling=own.ceiling,
    )


class ControlColumns(NamedTuple):
    """The controls of a batch's rows as columns (NaN where a price is not set)."""

    guardrails: ConfigColumns
    ending: FloatArray
    """The price ending (NaN: none); the kill switch is applied by the caller."""
    kill: npt.NDArray[np.bool_]
    fixed_price: FloatArray
    floor: FloatArray
    ceiling: FloatArray
    distinct: Sequence[Controls]
    """The batch's distinct :class:`Controls` (for the texts of the few rows that need them)."""
    code: npt.NDArray[np.intp]
    """Each row's index into ``distinct``."""

    def of_row(self, row: int) -> Controls:
        return self.distinct[int(self.code[row])]

    def take(self, rows: npt.NDArray[np.intp]) -> ControlColumns:
        """These rows (the config columns are left as they are: only the guardrails read them)."""
        return self._replace(
            ending=self.ending[rows], kill=self.kill[rows], fixed_price=self.fixed_price[rows],
            floor=self.floor[rows], ceiling=self.ceiling[rows], code=self.code[rows],
        )  # fmt: skip


def control_columns(skus: Sequence[str], source: ConfigSource, defaults: GuardrailConfig) -> ControlColumns:
    """:func:`controls_for` for a batch: one config read per distinct SKU, and one merge for all the
    SKUs that have no record of their own."""
    glob = parse_global(source)
    shared = _merge(GLOBAL_KEY, glob, _NONE, defaults)
    index: dict[str, int] = {}
    code = np.fromiter((index.setdefault(sku, len(index)) for sku in skus), np.intp, len(skus))
    distinct = [shared if source.get(sku) is None else _merge(sku, glob, _parse(source, sku), defaults)
                for sku in index]  # fmt: skip
    if all(c is shared for c in distinct):
        return _columns([shared], np.zeros(len(skus), dtype=np.intp), uniform=True)
    return _columns(distinct, code, uniform=False)


def _columns(distinct: Sequence[Controls], code: npt.NDArray[np.intp], uniform: bool) -> ControlColumns:
    def column(values: Sequence[float | None]) -> FloatArray:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)[code]

    configs = [c.guardrails for c in distinct]
    return ControlColumns(
        guardrails=ConfigColumns.of(configs[0]) if uniform else ConfigColumns.per_row(configs).take(code),
        ending=column([c.guardrails.price_ending for c in distinct]),
        kill=np.array([c.kill_switch is not None for c in distinct], dtype=np.bool_)[code],
        fixed_price=column([c.fixed_price for c in distinct]),
        floor=column([c.floor for c in distinct]),
        ceiling=column([c.ceiling for c in distinct]),
        distinct=distinct,
        code=code,
    )
