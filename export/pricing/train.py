"""Training loop for the demand model (Poisson likelihood, Adam, rich progress)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from rich.progress import Progress

from export.pricing.model import DemandNet, poisson_loss
from services.pricing.features import N_FEATURES, log_price_ratio

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    batch_size: int = 2048
    lr: float = 3e-3
    weight_decay: float = 1e-5
    hidden: int = 64
    seed: int = 0
    threads: int = 1


@dataclass(frozen=True)
class TrainData:
    """Flat training arrays: one observed price per row."""

    context: npt.NDArray[np.float32]
    price: npt.NDArray[np.float64]
    ref_price: npt.NDArray[np.float64]
    units: npt.NDArray[np.float64]


def fit(data: TrainData, config: TrainConfig, model: DemandNet | None = None) -> tuple[DemandNet, float]:
    """Train (or fine-tune, when ``model`` is given) and return the model and seconds taken."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    net = model if model is not None else DemandNet(N_FEATURES, config.hidden)
    ctx = torch.from_numpy(data.context)
    x = torch.from_numpy(log_price_ratio(data.price[:, None], data.ref_price))
    y = torch.from_numpy(data.units.astype(np.float32))[:, None]
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * max(1, -(-len(y) // config.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps)
    start = time.perf_counter()
    net.train()
    with Progress(transient=True) as progress:
        task = progress.add_task("training demand model", total=steps)
        for epoch in range(config.epochs):
            perm = torch.randperm(len(y))
            total = 0.0
            for i in range(0, len(y), config.batch_size):
                idx = perm[i : i + config.batch_size]
                log_u, _ = net.log_units(ctx[idx], x[idx])
                loss = poisson_loss(log_u, y[idx])
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
                progress.advance(task)
            logger.info("epoch %d: poisson loss %.4f", epoch + 1, total / len(y))
    net.eval()
    return net, time.perf_counter() - start


def predict(
    net: DemandNet, context: npt.NDArray[np.float32], prices: npt.NDArray[np.float64],
    ref_price: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Expected units and elasticity for ``prices`` ``[N]`` or ``[N, K]``."""
    grid = prices if prices.ndim == 2 else prices[:, None]
    with torch.no_grad():
        units, elast = net(torch.from_numpy(context), torch.from_numpy(log_price_ratio(grid, ref_price)))
    out_u, out_e = units.double().numpy(), elast.double().numpy()
    return (out_u, out_e) if prices.ndim == 2 else (out_u[:, 0], out_e[:, 0])
