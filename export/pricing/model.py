"""The neural demand model: expected units as a function of price and context.

``log units = a(ctx) - sum_k softplus(w_k(ctx)) * phi_k(x)`` with ``x = log(price / ref_price)``
and increasing basis functions ``phi_k``. Every coefficient is ``<= 0`` after the minus sign
and every basis function is increasing, so demand is monotone-decreasing in own price by
construction (no penalty, no check that could be skipped). The convex and concave softplus
bases let the elasticity grow or shrink with price instead of being one constant.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)

N_BASIS = 3
MIN_SLOPE = 1e-3
"""Keeps demand strictly decreasing, so the optimiser never sees a flat curve."""


def _basis(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Increasing basis functions of ``x`` ``[N, K]`` → values and derivatives ``[N, K, 3]``."""
    values = torch.stack(
        [x, 0.5 * nn.functional.softplus(2.0 * x), -0.5 * nn.functional.softplus(-2.0 * x)], dim=-1
    )
    slopes = torch.stack([torch.ones_like(x), torch.sigmoid(2.0 * x), torch.sigmoid(-2.0 * x)], dim=-1)
    return values, slopes


class DemandNet(nn.Module):
    """``forward(context [N, C], log_price_ratio [N, K]) -> (units [N, K], elasticity [N, K])``."""

    def __init__(self, n_features: int, hidden: int = 64) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
        )
        self.level = nn.Linear(hidden, 1)
        self.slopes = nn.Linear(hidden, N_BASIS)
        with torch.no_grad():
            # Start near a typical grocery elasticity of about -2 instead of 0.
            self.slopes.bias.fill_(0.5)

    def log_units(self, context: torch.Tensor, log_price_ratio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Log expected units and the point elasticity, both ``[N, K]``."""
        h = self.trunk(context)
        # A residual on recent demand (feature 0 is log1p(recent units)): the net only learns
        # how this period differs, which trains fast and transfers across markets.
        level = context[:, :1] + self.level(h)  # [N, 1]
        coef = nn.functional.softplus(self.slopes(h)) + MIN_SLOPE  # [N, B], all > 0
        values, slopes = _basis(log_price_ratio)
        log_u = level - (values * coef[:, None, :]).sum(-1)
        elasticity = -(slopes * coef[:, None, :]).sum(-1)
        return log_u, elasticity

    def forward(self, context: torch.Tensor, log_price_ratio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        log_u, elasticity = self.log_units(context, log_price_ratio)
        return torch.exp(log_u.clamp(max=20.0)), elasticity


def poisson_loss(log_u: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """Poisson negative log-likelihood (up to a constant) on the log rate."""
    return (torch.exp(log_u.clamp(max=20.0)) - units * log_u).mean()
