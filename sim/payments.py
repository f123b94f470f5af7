"""Card payments: mostly legitimate, with injected fraud whose label and attack type are kept.

The fraud mix is a parameter (:class:`FraudMix`), and so is the shop, so two different shops
(seed and mix) can be produced for fine-tuning experiments. Legitimate traffic includes hard
negatives (travel abroad, a new phone) so that simple rules are not enough.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from shared.schemas.payments import MAX_AMOUNT, Transaction
from sim.fraud import ATTACK_TYPES, ATTACKS, FRAUD_DEVICE, MerchantPools, TxnColumns, Victims
from sim.stream import Row, SimStream
from sim.world import EPOCH_MS, World

logger = logging.getLogger(__name__)

# country, currency, USD->currency rate, share of users
COUNTRIES = (
    ("US", "USD", 1.0, 0.35), ("GB", "GBP", 0.8, 0.12), ("DE", "EUR", 0.92, 0.1), ("FR", "EUR", 0.92, 0.08),
    ("ES", "EUR", 0.92, 0.05), ("IT", "EUR", 0.92, 0.05), ("NL", "EUR", 0.92, 0.04), ("CA", "CAD", 1.35, 0.05),
    ("AU", "AUD", 1.5, 0.04), ("JP", "JPY", 150.0, 0.04), ("BR", "BRL", 5.0, 0.03), ("IN", "INR", 83.0, 0.03),
    ("MX", "MXN", 17.0, 0.02),
)  # fmt: skip
MERCHANT_CATEGORIES = ("grocery", "restaurants", "fashion", "electronics", "travel", "digital_goods",
                       "gift_cards", "jewellery", "pharmacy", "fuel", "entertainment", "home")  # fmt: skip
CHANNELS = ("web", "app", "pos")


@dataclass(frozen=True, slots=True)
class FraudMix:
    """Attack episodes per 10,000 legitimate transactions, by type."""

    card_testing: float = 6.0
    account_takeover: float = 8.0
    velocity: float = 5.0

    def rates(self) -> tuple[float, float, float]:
        return (self.card_testing, self.account_takeover, self.velocity)


@dataclass(frozen=True, slots=True)
class PaymentsConfig:
    shop: str = "A"
    """Shops differ in their user profiles and merchants (different generator streams)."""
    mix: FraudMix = field(default_factory=FraudMix)
    n_merchants: int = 800
    txns_per_second: float = 20.0
    chunk_seconds: float = 600.0
    p_travel: float = 0.01
    p_new_device: float = 0.01


def device_ids(keys: NDArray[np.int64]) -> list[str]:
    """Opaque device ids from integer keys (a multiplicative hash), so ids do not leak the label."""
    mixed = (keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(16)
    return [f"d{x:012x}" for x in mixed.tolist()]


class PaymentsSim(SimStream):
    name = "payments"
    model = Transaction
    key_field = "user_id"

    def __init__(self, world: World, config: PaymentsConfig | None = None) -> None:
        super().__init__(world)
        self.config = config or PaymentsConfig()
        self._build(world.rng("payments-world", self.config.shop))

    def _build(self, rng: np.random.Generator) -> None:
        n, cfg = self.world.n_users, self.config
        share = np.array([c[3] for c in COUNTRIES])
        self.home = rng.choice(len(COUNTRIES), n, p=share / share.sum())
        self.n_cards = rng.integers(1, 3, n)
        self.n_devices = rng.integers(1, 4, n)
        self.typical_usd = np.exp(rng.normal(np.log(35.0), 0.7, n))
        self.channel_p = rng.dirichlet([2.0, 2.0, 1.0], n).cumsum(axis=1)
        self.card_bin = rng.integers(400_000, 560_000, (n, 2))
        self.merchant_cat = rng.integers(0, len(MERCHANT_CATEGORIES), cfg.n_merchants)
        pop = np.arange(1, cfg.n_merchants + 1, dtype=float) ** -0.8
        self.merchant_cum = np.cumsum(pop / pop.sum())
        names = np.array(MERCHANT_CATEGORIES)[self.merchant_cat]
        self.pools = MerchantPools(
            digital=np.flatnonzero(np.isin(names, ["digital_goods", "gift_cards"])),
            high_value=np.flatnonzero(np.isin(names, ["electronics", "jewellery", "gift_cards"])),
            n_merchants=cfg.n_merchants,
            n_countries=len(COUNTRIES),
        )
        self.activity = self.world.user_activity

    def _legit(self, rng: np.random.Generator, t0: int, span_ms: int) -> TxnColumns:
        cfg = self.config
        k = int(rng.poisson(cfg.txns_per_second * span_ms / 1000.0))
        user = rng.choice(self.world.n_users, k, p=self.activity)
        device = (rng.random(k) * self.n_devices[user]).astype(np.int64)
        new_dev = rng.random(k) < cfg.p_new_device  # a legitimately new phone: index past the known ones
        device[new_dev] = self.n_devices[user[new_dev]] + rng.integers(0, 5, int(new_dev.sum()))
        country = self.home[user].copy()
        travel = rng.random(k) < cfg.p_travel
        country[travel] = rng.integers(0, len(COUNTRIES), int(travel.sum()))
        return TxnColumns(
            user=user, card=(rng.random(k) * self.n_cards[user]).astype(np.int64), device=device, country=country,
            amount=np.round(self.typical_usd[user] * rng.lognormal(0.0, 0.6, k), 2),
            merchant=np.minimum(np.searchsorted(self.merchant_cum, rng.random(k)), cfg.n_merchants - 1),
            channel=(rng.random((k, 1)) < self.channel_p[user]).argmax(axis=1),
            ts=t0 + rng.integers(0, span_ms, k), label=np.zeros(k, dtype=np.int64), episode=np.full(k, -1),
        )  # fmt: skip

    def _attacks(self, rng: np.random.Generator, counts: list[int], t0: int, span_ms: int, ep0: int) -> TxnColumns:
        parts = []
        for attack, n in zip(ATTACKS, counts, strict=True):
            users = rng.choice(self.world.n_users, n, p=self.activity)
            v = Victims(users, self.n_cards[users], self.n_devices[users], self.home[users], self.typical_usd[users])
            parts.append(attack(rng, v, t0 + rng.integers(0, span_ms, n), ep0, self.pools))
            ep0 += n
        return TxnColumns.concat(parts)

    def chunks(self) -> Iterator[list[Row]]:
        """Chunks of ``chunk_seconds``; episode tails that run past a chunk carry into the next."""
        cfg = self.config
        rng, span = self.world.rng(self.name, cfg.shop), int(cfg.chunk_seconds * 1000)
        t0, episode, txn, carry = EPOCH_MS, 0, 0, np.zeros(3)
        pending: TxnColumns | None = None
        while True:
            legit = self._legit(rng, t0, span)
            carry += np.array(cfg.mix.rates()) * len(legit) / 10_000.0
            counts = np.floor(carry).astype(np.int64)
            carry -= counts
            attacks = self._attacks(rng, counts.tolist(), t0, span, episode)
            episode += int(counts.sum())
            batch = TxnColumns.concat([legit, attacks] + ([pending] if pending is not None else []))
            due = batch.ts < t0 + span
            ready, pending = batch.take(due), batch.take(~due)
            ready = ready.take(np.argsort(ready.ts, kind="stable"))
            yield self._rows(ready, txn)
            t0, txn = t0 + span, txn + len(ready)

    def _rows(self, c: TxnColumns, txn0: int) -> list[Row]:
        uids, rows = self.world.user_ids, []
        fx = np.array([x[2] for x in COUNTRIES])[self.home[c.user]]
        amounts = np.clip(np.round(c.amount * fx, 2), 0.01, MAX_AMOUNT).tolist()
        bins = self.card_bin[c.user, c.card].tolist()
        mcat = np.array(MERCHANT_CATEGORIES)[self.merchant_cat[c.merchant]].tolist()
        devices = device_ids(np.where(c.device == FRAUD_DEVICE, (1 << 40) + c.episode, c.user * 16 + c.device))
        cols = zip(c.user.tolist(), c.card.tolist(), c.device.tolist(), c.country.tolist(), c.merchant.tolist(),
                   c.channel.tolist(), c.ts.tolist(), c.label.tolist(), c.episode.tolist(), strict=True)  # fmt: skip
        for i, (user, card, _dev, country, merchant, channel, ts, label, ep) in enumerate(cols):
            uid = uids[user]
            event = {
                "txn_id": f"t{txn0 + i:012d}", "user_id": uid, "card_id": f"c{user:07d}{card}",
                "amount": amounts[i], "currency": COUNTRIES[int(self.home[user])][1],
                "merchant_id": f"m{merchant:05d}", "merchant_category": mcat[i],
                "device_id": devices[i],
                "ip_country": COUNTRIES[country][0], "card_bin": str(bins[i]), "channel": CHANNELS[channel],
                "ts_ms": ts,
            }  # fmt: skip
            truth = {"is_fraud": label > 0, "attack_type": ATTACK_TYPES[label - 1] if label else None,
                     "episode": ep if label else None}  # fmt: skip
            rows.append((event, truth))
        return rows
