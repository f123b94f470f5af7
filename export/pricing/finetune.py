"""Fine-tuning: a model trained on one simulated market, adapted to another with little data.

Market B has different SKUs and elasticities shifted by ``SHIFT`` (more price-sensitive).
Compared on B's held-out weeks: A's model as is, a B model trained from scratch on the few
weeks, A's model fine-tuned on those weeks, and a B model with the full history (reference).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from export.pricing.evaluate_sim import forecast_scores, model_policy, regret_table, train_sim
from export.pricing.model import DemandNet
from export.pricing.sim_data import SimRows, simulate
from export.pricing.train import TrainConfig

logger = logging.getLogger(__name__)

SHIFT = -0.6
HISTORY_WEEKS = 40
TEST_WEEKS = 12
FULL = TrainConfig(epochs=40, batch_size=512)
FINE_TUNE = TrainConfig(epochs=20, batch_size=256, lr=1e-3)


def _score(net: DemandNet, test: SimRows) -> dict[str, float]:
    return {**forecast_scores(net, test), "regret": regret_table(test, {"m": model_policy(net)})[0].regret}


def run(pretrained: DemandNet, few_weeks: int = 3, n_skus: int = 400) -> dict[str, Any]:
    """Score the four variants on market B; ``pretrained`` is market A's model."""
    rows = simulate("B", HISTORY_WEEKS + TEST_WEEKS, n_skus, elasticity_shift=SHIFT)
    test = rows.take(rows.week >= HISTORY_WEEKS)
    few = rows.take(rows.week <= few_weeks)  # week 0 has no previous price and is not in rows
    full = rows.take(rows.week < HISTORY_WEEKS)
    scratch_few, t_scratch = train_sim(few, TrainConfig(epochs=60, batch_size=256))
    tuned, t_tuned = train_sim(few, FINE_TUNE, copy.deepcopy(pretrained))
    scratch_full, t_full = train_sim(full, FULL)
    return {
        "market_b": {"elasticity_shift": SHIFT, "few_weeks": few_weeks, "few_rows": len(few.requests),
                     "full_rows": len(full.requests), "test_rows": len(test.requests)},
        "a_model_zero_shot": _score(pretrained, test),
        "b_scratch_few_weeks": {**_score(scratch_few, test), "train_seconds": t_scratch},
        "a_model_fine_tuned_few_weeks": {**_score(tuned, test), "train_seconds": t_tuned},
        "b_scratch_full_history": {**_score(scratch_full, test), "train_seconds": t_full},
    }
