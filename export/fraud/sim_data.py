"""Training sets from the simulated shop's payments, featurised by the serving code.

Events are replayed in event-time order through :func:`services.fraud.features.replay`, the
function the scorer's state updates share, so training and serving features are the same.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.fraud.features import FEATURE_VERSION, Txn, from_transaction, replay
from shared.schemas.payments import Transaction
from sim.payments import FraudMix
from sim.registry import make_stream, world_for

logger = logging.getLogger(__name__)

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class SimSet:
    """Featurised payments with their ground truth, in event-time order."""

    numeric: np.ndarray
    categorical: np.ndarray
    label: np.ndarray
    attack: np.ndarray
    """Attack type per row (``""`` for legitimate payments)."""
    ts_ms: np.ndarray
    description: str

    def __len__(self) -> int:
        return len(self.label)

    def take(self, idx: np.ndarray) -> SimSet:
        return SimSet(self.numeric[idx], self.categorical[idx], self.label[idx], self.attack[idx],
                      self.ts_ms[idx], self.description)  # fmt: skip

    def time_split(self, *fractions: float) -> list[SimSet]:
        """Consecutive time slices ending at the given fractions of the time span (and the rest)."""
        t0, t1 = float(self.ts_ms[0]), float(self.ts_ms[-1])
        cuts = [0, *[int(np.searchsorted(self.ts_ms, t0 + f * (t1 - t0))) for f in fractions], len(self)]
        return [self.take(np.arange(a, b)) for a, b in itertools.pairwise(cuts)]


def simulate(
    hours: float, *, seed: int = 7, shop: str = "A", mix: FraudMix | None = None, n_users: int = 20_000
) -> tuple[list[Txn], np.ndarray, np.ndarray]:
    """``hours`` of a shop's payments: feature views, labels and attack types."""
    stream = make_stream("payments", world=world_for(seed, n_users), shop=shop, mix=mix or FraudMix())
    txns, labels, attacks = [], [], []
    end = None
    for event, truth in stream.iter_dicts():
        end = end or event["ts_ms"] + int(hours * HOUR_MS)
        if event["ts_ms"] >= end:
            break
        txns.append(from_transaction(Transaction.model_construct(**event)))
        labels.append(1 if truth["is_fraud"] else 0)
        attacks.append(truth["attack_type"] or "")
    return txns, np.asarray(labels, dtype=np.int64), np.asarray(attacks)


def build(
    hours: float, *, seed: int = 7, shop: str = "A", mix: FraudMix | None = None, cache_dir: Path | None = None
) -> SimSet:
    """Simulate and featurise ``hours`` of payments of one shop (reusing ``cache_dir`` copies)."""
    mix = mix or FraudMix()
    desc = (f"sim payments seed={seed} shop={shop} hours={hours:g} mix=ct{mix.card_testing:g}/"
            f"ato{mix.account_takeover:g}/vel{mix.velocity:g}")  # fmt: skip
    name = f"{desc} features=v{FEATURE_VERSION}".replace(" ", "_").replace("/", "-") + ".npz"
    cached = cache_dir / name if cache_dir else None
    if cached is not None and cached.exists():
        with np.load(cached) as z:
            return SimSet(z["numeric"], z["categorical"], z["label"], z["attack"], z["ts_ms"], desc)
    data = _build(hours, seed, shop, mix, desc)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, numeric=data.numeric, categorical=data.categorical, label=data.label,
                 attack=data.attack, ts_ms=data.ts_ms)  # fmt: skip
    return data


def _build(hours: float, seed: int, shop: str, mix: FraudMix, desc: str) -> SimSet:
    start = time.perf_counter()
    txns, labels, attacks = simulate(hours, seed=seed, shop=shop, mix=mix)
    numeric, categorical = replay(txns)
    ts = np.asarray([t.ts_ms for t in txns], dtype=np.int64)
    order = np.argsort(ts, kind="stable")
    logger.info("%s: %d payments, %d fraud, %.1f s", desc, len(labels), int(labels.sum()), time.perf_counter() - start)
    return SimSet(numeric, categorical, labels, attacks, ts, desc).take(order)
