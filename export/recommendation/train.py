"""Full-softmax training of :class:`SASRec`: every position predicts its next item.

Cross-entropy over all items (not SASRec's one sampled negative) is what lifts a plain
SASRec above the published numbers. Batches hold sequences of similar length and are padded
only to their own longest one, and logits are computed only at real positions, so CPU time
goes into real work rather than padding.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from export.progress import make_progress
from export.recommendation.model import SASRec
from services.recommendation.features import pad_left

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    time_budget_s: float = 900.0
    """Stop after the epoch that crosses this wall-clock budget."""
    eval_every: int = 2
    patience: int = 6
    """Evaluations without a validation gain before stopping."""
    seed: int = 42
    threads: int = 1
    """One thread: the 2-core box is shared, and oversubscribed OpenMP threads spin."""
    negatives: int = 0
    """0 = full softmax over all items; n > 0 = softmax over the target and n shared uniform
    negatives per batch (a cheap approximation for a busy CPU)."""
    bce_weight: float = 0.0
    """Weight of the extra binary loss (see :func:`batch_loss`); 0 = cross-entropy only."""
    ce_weight: float = 1.0
    """Weight of the sampled cross-entropy (0 with ``bce_weight`` 1 = SASRec's binary loss alone)."""
    progress: bool = True


@dataclass
class TrainResult:
    model: SASRec
    best_epoch: int
    best_valid: float
    epochs_run: int
    train_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def make_batches(
    sequences: list[list[int]], max_len: int, batch_size: int, rng: np.random.Generator
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Length-bucketed (input, target) batches: input ``s[:-1]``, target ``s[1:]``, left-padded.

    A history longer than the model's window is cut into windows (:func:`windows`), so every one
    of its items is a target once: keeping only the newest window dropped most of what the
    busiest users did, 40 % of the targets of a million simulated events.
    """
    clipped = [w for s in sequences for w in windows(s, max_len)]
    order = np.argsort([len(s) + rng.random() for s in clipped], kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        chunk = [clipped[i] for i in order[start : start + batch_size]]
        inputs = pad_left([s[:-1] for s in chunk], max_len)
        targets = pad_left([s[1:] for s in chunk], max_len)
        batches.append((torch.from_numpy(inputs), torch.from_numpy(targets)))
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def windows(sequence: list[int], max_len: int) -> list[list[int]]:
    """``sequence`` as windows of at most ``max_len + 1`` items, newest first, each overlapping the
    next older one by one item, so that each item after the first is the target of one position."""
    out = []
    for end in range(len(sequence), 1, -max_len):
        out.append(sequence[max(0, end - max_len - 1) : end])
    return out


def batch_loss(
    model: SASRec, inputs: torch.Tensor, targets: torch.Tensor, negatives: int = 0, bce_weight: float = 0.0,
    ce_weight: float = 1.0,
) -> torch.Tensor:
    """Mean cross-entropy at every real (non-padded) position, over all items or a sample.

    ``bce_weight`` adds SASRec's binary loss against the same uniform negatives (target logit
    above 0, random items below 0): it is what the sampled-negative protocol rewards.
    """
    mask = targets > 0
    hidden, target = model.hidden(inputs)[mask], targets[mask]
    if negatives <= 0:
        return F.cross_entropy(model.logits(hidden), target)
    sampled = torch.randint(1, model.cfg.num_items + 1, (negatives,))
    positive = ((hidden * model.item_vectors(target)).sum(-1) + model.output_bias(target)).unsqueeze(-1)
    clash = sampled.unsqueeze(0) == target.unsqueeze(1)
    negative = (hidden @ model.item_vectors(sampled).t() + model.output_bias(sampled)).masked_fill(clash, -1e4)
    loss = ce_weight * F.cross_entropy(torch.cat([positive, negative], dim=1), torch.zeros_like(target))
    if bce_weight > 0:
        binary = -F.logsigmoid(positive).mean() - F.logsigmoid(-negative).mean()
        loss = loss + bce_weight * binary
    return loss


def train(
    model: SASRec,
    sequences: list[list[int]],
    cfg: TrainConfig,
    validate: Callable[[SASRec], float] | None,
) -> TrainResult:
    """Train with Adam, validating every ``eval_every`` epochs; returns the best model seen.

    Without ``validate`` (a refit whose epoch count was chosen beforehand) every epoch runs
    and the last one is kept.
    """
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best = (-1.0, 0, copy.deepcopy(model.state_dict()))
    history: list[dict[str, float]] = []
    start, waited, epoch = time.perf_counter(), 0, 0
    with make_progress(cfg.progress) as progress:
        task = progress.add_task("sasrec", total=cfg.epochs, status="")
        for epoch in range(1, cfg.epochs + 1):
            batches = make_batches(sequences, model.cfg.max_len, cfg.batch_size, rng)
            loss = _run_epoch(model, opt, batches, cfg)
            row = {"epoch": float(epoch), "loss": loss, "seconds": time.perf_counter() - start}
            out_of_time = row["seconds"] > cfg.time_budget_s or epoch == cfg.epochs
            if validate is None:
                best = (float("nan"), epoch, model.state_dict())
            elif epoch % cfg.eval_every == 0 or out_of_time:  # the last epoch is always validated
                row["valid"] = validate(model)
                if row["valid"] > best[0]:
                    best, waited = (row["valid"], epoch, copy.deepcopy(model.state_dict())), 0
                else:
                    waited += 1
            history.append(row)
            logger.info("epoch %d %s", epoch, {k: round(v, 4) for k, v in row.items()})
            progress.update(task, advance=1, status=f"loss {loss:.3f} best valid {best[0]:.4f}")
            if waited >= cfg.patience or out_of_time:
                break
    model.load_state_dict(best[2])
    model.eval()
    return TrainResult(model, best[1], best[0], epoch, time.perf_counter() - start, history)


def _run_epoch(
    model: SASRec, opt: torch.optim.Optimizer, batches: list[tuple[torch.Tensor, torch.Tensor]], cfg: TrainConfig
) -> float:
    model.train()
    total, count = 0.0, 0
    for inputs, targets in batches:
        opt.zero_grad(set_to_none=True)
        loss = batch_loss(model, inputs, targets, cfg.negatives, cfg.bce_weight, cfg.ce_weight)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        total += float(loss.detach()) * len(inputs)
        count += len(inputs)
    return total / max(count, 1)
