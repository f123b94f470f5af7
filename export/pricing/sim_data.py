"""Training and test rows from the simulated shop (``sim.pricing``), built like serving.

Each weekly request is turned into a demand context with the scorer's own
:func:`services.pricing.decisions.context_of`, with the SKU's previous-week price as the
reference (what the service keeps in its state store). The label is the week's observed
units at the request's current price; the ground truth stays beside it for regret.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.pricing.decisions import context_of
from services.pricing.features import DemandContext, context_matrix
from shared.schemas.pricing import PricingRequest
from sim.pricing import PricingConfig, PricingSim
from sim.world import World

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimRows:
    """One row per (SKU, week) request, in stream order."""

    sim: PricingSim
    requests: list[PricingRequest]
    contexts: list[DemandContext]
    week: npt.NDArray[np.int64]
    sku_index: npt.NDArray[np.int64]
    observed: npt.NDArray[np.float64]

    @property
    def context(self) -> npt.NDArray[np.float32]:
        return context_matrix(self.contexts)

    @property
    def price(self) -> npt.NDArray[np.float64]:
        return np.array([r.current_price for r in self.requests])

    @property
    def ref_price(self) -> npt.NDArray[np.float64]:
        return np.array([c.ref_price for c in self.contexts])

    def take(self, mask: npt.NDArray[np.bool_]) -> SimRows:
        idx = np.nonzero(mask)[0]
        return SimRows(
            self.sim, [self.requests[i] for i in idx], [self.contexts[i] for i in idx],
            self.week[idx], self.sku_index[idx], self.observed[idx],
        )


def simulate(market: str, weeks: int, n_skus: int = 400, seed: int = 7, elasticity_shift: float = 0.0) -> SimRows:
    """``weeks`` weeks of requests for one market (week 0 has no previous price and is dropped)."""
    from sim.world import WorldConfig

    world = World.build(WorldConfig(seed=seed))
    sim = PricingSim(world, PricingConfig(n_skus=n_skus, market=market, elasticity_shift=elasticity_shift))
    previous: dict[str, float] = {}
    requests, contexts, week, sku, observed = [], [], [], [], []
    for i, (event, truth) in enumerate(sim.iter_dicts(n_skus * weeks)):
        req = PricingRequest.model_validate(event)
        prev = previous.get(req.sku)
        previous[req.sku] = req.current_price
        if prev is None:
            continue
        requests.append(req)
        contexts.append(context_of(req, prev))
        week.append(i // n_skus)
        sku.append(truth["sku_index"])
        observed.append(truth["observed_units"])
    logger.info("sim market %s: %d rows over %d weeks", market, len(requests), weeks)
    return SimRows(sim, requests, contexts, np.array(week), np.array(sku), np.array(observed, dtype=np.float64))
