"""Injected fraud episodes, built column-wise: card testing, account takeover, velocity bursts.

Each episode is a burst of transactions with the same ``episode`` id and attack label:

* ``card_testing``: a stolen card is tried with 5-30 tiny amounts within minutes, from a
  fraudster device and a foreign IP, at digital-goods merchants; half end with a large buy.
* ``account_takeover``: a new device in a new country, then 1-4 amounts 5-20x the user's usual.
* ``velocity``: 8-25 ordinary-looking purchases on the user's card within ~20 minutes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

ATTACK_TYPES = ("card_testing", "account_takeover", "velocity")
"""Label ``k`` (1-based) in :attr:`TxnColumns.label` is ``ATTACK_TYPES[k - 1]``; 0 is legitimate."""
FRAUD_DEVICE = -1
"""Device code of a fraudster's device (its id is derived from the episode)."""

IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class TxnColumns:
    """Aligned columns of a batch of transactions (indices into the shop's tables)."""

    user: IntArray
    card: IntArray
    device: IntArray
    country: IntArray
    amount: NDArray[np.float64]
    """In US dollars; converted to the card's currency when rows are written."""
    merchant: IntArray
    channel: IntArray
    ts: IntArray
    label: IntArray
    episode: IntArray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def take(self, idx: IntArray | NDArray[np.bool_]) -> TxnColumns:
        return TxnColumns(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    @staticmethod
    def concat(parts: list[TxnColumns]) -> TxnColumns:
        return TxnColumns(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(TxnColumns)})


@dataclass(frozen=True)
class Victims:
    """What an attack needs to know about its victims (aligned with the episodes)."""

    user: IntArray
    n_cards: IntArray
    n_devices: IntArray
    home: IntArray
    typical_usd: NDArray[np.float64]


@dataclass(frozen=True)
class MerchantPools:
    digital: IntArray
    """Merchants used for card testing (digital goods, gift cards)."""
    high_value: IntArray
    """Merchants used to cash out (electronics, jewellery, gift cards)."""
    n_merchants: int
    n_countries: int


def _expand(rng: np.random.Generator, v: Victims, lo: int, hi: int) -> tuple[IntArray, IntArray]:
    """Per-episode counts in [lo, hi] and the episode index of every transaction."""
    counts = rng.integers(lo, hi + 1, v.user.size)
    return counts, np.repeat(np.arange(v.user.size), counts)


def _times(rng: np.random.Generator, start: IntArray, owner: IntArray, mean_gap_ms: float) -> IntArray:
    """Episode starts at ``start``; later transactions follow exponential gaps."""
    cum = np.cumsum(rng.exponential(mean_gap_ms, owner.size))
    first = np.searchsorted(owner, owner, side="left")  # owner is sorted: index of the episode's first txn
    return (start[owner] + cum - cum[first]).astype(np.int64)


def _foreign(rng: np.random.Generator, home: IntArray, n_countries: int) -> IntArray:
    shift = rng.integers(1, n_countries, home.size)
    return (home + shift) % n_countries  # type: ignore[no-any-return]


def card_testing(rng: np.random.Generator, v: Victims, start: IntArray, ep0: int, m: MerchantPools) -> TxnColumns:
    counts, owner = _expand(rng, v, 5, 30)
    amount = np.round(rng.uniform(0.5, 3.0, owner.size), 2)
    last = np.cumsum(counts) - 1
    cash_out = rng.random(v.user.size) < 0.5
    amount[last[cash_out]] = np.round(rng.uniform(150.0, 900.0, int(cash_out.sum())), 2)
    merchant = m.digital[rng.integers(0, m.digital.size, owner.size)]
    return TxnColumns(
        user=v.user[owner], card=rng.integers(0, v.n_cards)[owner], device=np.full(owner.size, FRAUD_DEVICE),
        country=_foreign(rng, v.home, m.n_countries)[owner], amount=amount, merchant=merchant,
        channel=np.zeros(owner.size, dtype=np.int64), ts=_times(rng, start, owner, 20_000.0),
        label=np.full(owner.size, 1), episode=ep0 + owner,
    )  # fmt: skip


def account_takeover(rng: np.random.Generator, v: Victims, start: IntArray, ep0: int, m: MerchantPools) -> TxnColumns:
    _, owner = _expand(rng, v, 1, 4)
    amount = np.round(v.typical_usd[owner] * rng.uniform(5.0, 20.0, owner.size), 2)
    return TxnColumns(
        user=v.user[owner], card=rng.integers(0, v.n_cards)[owner], device=np.full(owner.size, FRAUD_DEVICE),
        country=_foreign(rng, v.home, m.n_countries)[owner], amount=amount,
        merchant=m.high_value[rng.integers(0, m.high_value.size, owner.size)],
        channel=rng.integers(0, 2, v.user.size)[owner], ts=_times(rng, start, owner, 600_000.0),
        label=np.full(owner.size, 2), episode=ep0 + owner,
    )  # fmt: skip


def velocity_burst(rng: np.random.Generator, v: Victims, start: IntArray, ep0: int, m: MerchantPools) -> TxnColumns:
    _, owner = _expand(rng, v, 8, 25)
    # Half the bursts come from a cloned card on a fraudster device, half from the user's own device.
    own = rng.random(v.user.size) < 0.5
    device = np.where(own, rng.integers(0, v.n_devices), FRAUD_DEVICE)[owner]
    return TxnColumns(
        user=v.user[owner], card=rng.integers(0, v.n_cards)[owner], device=device, country=v.home[owner],
        amount=np.round(v.typical_usd[owner] * rng.uniform(0.5, 2.0, owner.size), 2),
        merchant=rng.integers(0, m.n_merchants, owner.size), channel=rng.integers(0, 3, v.user.size)[owner],
        ts=_times(rng, start, owner, 60_000.0), label=np.full(owner.size, 3), episode=ep0 + owner,
    )  # fmt: skip


ATTACKS = (card_testing, account_takeover, velocity_burst)
"""Generators in :data:`ATTACK_TYPES` order."""
