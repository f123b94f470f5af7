"""The demand model: monotone by construction, and a tiny recipe run exports, passes parity and serves."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.train


def test_untrained_random_model_is_already_monotone_decreasing_in_price():
    import torch

    from export.pricing.model import DemandNet
    from services.pricing.features import N_FEATURES

    torch.manual_seed(3)
    net = DemandNet(N_FEATURES, hidden=16)
    for p in net.parameters():  # wild weights: monotonicity must not depend on training
        torch.nn.init.normal_(p, std=2.0)
    context = torch.randn(200, N_FEATURES)
    grid = torch.linspace(-1.2, 1.2, 40).repeat(200, 1)
    with torch.no_grad():
        log_units, elasticity = net.log_units(context, grid)
        units, _ = net(context, grid)
    assert bool((log_units[:, 1:] < log_units[:, :-1]).all()), "more expensive must never sell more"
    assert bool((units[:, 1:] <= units[:, :-1]).all())  # exp() may saturate or underflow, never rise
    assert bool((elasticity < 0).all())


def test_tiny_recipe_exports_with_parity_and_the_scorer_serves_it(tmp_path):
    from export.pipeline import export_and_publish
    from export.pricing.recipe import train
    from export.registry import RecipeArgs
    from services.pricing.scorer import PricingScorer
    from services.pricing.settings import PricingSettings
    from shared.models.repository import ModelRepository
    from shared.runtime.scorer import Event, LoadContext, Scored
    from shared.runtime.state import StateStore
    from shared.schemas.pricing import PricingDecision, PricingRequest
    from sim.pricing import PricingSim
    from sim.world import World

    args = RecipeArgs(models_dir=tmp_path, tiny=True, variants=(), progress=False)
    manifest = export_and_publish(train(args), ModelRepository(tmp_path))
    assert manifest.parity is not None and manifest.parity.passed
    assert manifest.feature_spec["features"][0] == "log1p_recent_units"

    settings = PricingSettings(models_dir=tmp_path, config_topic=None, execution_providers=["cpu"])
    scorer = PricingScorer(settings)
    scorer.load(LoadContext(settings=settings, state=StateStore()))
    requests = [PricingRequest.model_validate(e) for e, _ in PricingSim(World.build()).iter_dicts(5)]
    results = scorer.score([Event(r, r.sku, "t", 0, i, r.ts_ms) for i, r in enumerate(requests)])
    assert all(isinstance(r, Scored) for r in results)
    assert scorer.model_info.version == manifest.version
    decisions = [PricingDecision.model_validate_json(r.outputs[0].value) for r in results]  # type: ignore[union-attr,arg-type]
    assert np.isfinite([d.recommended_price for d in decisions]).all()
