"""Ad requests with candidate ads whose true click-through rate is known.

Ground truth for candidate ``a`` in request ``r``::

    logit = base + affinity[segment(r), category(a)] + slot[r] + device[r] + hour[r] + site[r]
            + sum(hook word weights in title(a))
    ctr   = sigmoid(logit)

Each ad has two creatives whose titles differ only in their "hook" (``"Free Shipping"``,
``"Sponsored"``...), so the text of the title carries signal of its own. The truth row holds,
per candidate, the true CTR and a sampled click: the label *if that candidate were shown*.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from shared.schemas.ads import AdRequest
from sim.catalogue import CATEGORY_NAMES
from sim.stream import Row, SimStream
from sim.world import DAY_MS, EPOCH_MS, SEGMENT_OF_CATEGORY, SEGMENTS, World

logger = logging.getLogger(__name__)

HOOKS: dict[str, float] = {
    "Free Shipping": 0.45, "50% Off": 0.6, "Limited Time": 0.3, "Best Seller": 0.35, "New": 0.15,
    "Top Rated": 0.3, "Buy Now": 0.1, "Premium": 0.0, "Official Store": 0.05, "Clearance": -0.1,
    "Sponsored": -0.45, "Ad": -0.35,
}  # fmt: skip
SLOTS: dict[str, float] = {"top_banner": 0.5, "in_feed": 0.3, "sidebar": -0.4, "footer": -0.8, "interstitial": 0.1}
DEVICES: dict[str, float] = {"mobile": 0.15, "desktop": 0.0, "tablet": 0.05, "tv": -0.5, "other": -0.3}
_DEVICE_P = (0.55, 0.3, 0.1, 0.03, 0.02)


def sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-x))  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class AdsConfig:
    n_ads: int = 2_000
    n_advertisers: int = 200
    n_sites: int = 60
    max_candidates: int = 20
    base_logit: float = -4.0
    affinity: float = 1.2
    """Extra logit when the ad's category belongs to the user's segment."""
    requests_per_chunk: int = 5_000
    requests_per_second: float = 200.0
    day: int = 0
    """Day ``d > 0`` starts ``d`` days later, with its own requests and drifted effects."""
    drift: float = 0.25
    """Std-dev of the per-day random shift of the segment x category and hook effects."""


class AdsSim(SimStream):
    name = "ads"
    model = AdRequest
    key_field = "request_id"

    def __init__(self, world: World, config: AdsConfig | None = None) -> None:
        super().__init__(world)
        self.config = config or AdsConfig()
        self._build(world.rng("ads-world"))

    def _build(self, rng: np.random.Generator) -> None:
        cfg, cat = self.config, self.world.catalogue
        self.ad_item = rng.integers(0, cat.n_items, cfg.n_ads)
        self.ad_category = cat.category[self.ad_item]
        self.ad_advertiser = rng.integers(0, cfg.n_advertisers, cfg.n_ads)
        self.ad_bid = np.round(rng.lognormal(-0.5, 0.6, cfg.n_ads), 4)
        hooks = list(HOOKS)
        self.creative_hook = rng.integers(0, len(hooks), (cfg.n_ads, 2))
        self.creative_title = [
            [f"{hooks[h]}: {cat.titles[self.ad_item[a]]}" for h in self.creative_hook[a]] for a in range(cfg.n_ads)
        ]
        self.hook_weight = np.array(list(HOOKS.values()))
        match = np.array([[SEGMENT_OF_CATEGORY[c] == s for c in CATEGORY_NAMES] for s in SEGMENTS], dtype=float)
        self.seg_cat = cfg.affinity * match + rng.normal(0.0, 0.3, match.shape)
        self.site_effect = rng.normal(0.0, 0.3, cfg.n_sites)
        hours = np.arange(24)
        self.hour_effect = 0.3 * np.sin((hours - 14) / 24 * 2 * np.pi)  # evening peak
        if cfg.day > 0:  # a later day: same ads, tastes and hooks shifted a little (for fine-tuning)
            day_rng = self.world.rng("ads-drift", cfg.day)
            self.seg_cat = self.seg_cat + day_rng.normal(0.0, cfg.drift, self.seg_cat.shape)
            self.hook_weight = self.hook_weight + day_rng.normal(0.0, cfg.drift, self.hook_weight.shape)

    @cached_property
    def _ad_static(self) -> list[tuple[str, str, str]]:
        return [
            (f"ad{a:05d}", f"adv{int(v):04d}", CATEGORY_NAMES[int(c)])
            for a, (v, c) in enumerate(zip(self.ad_advertiser, self.ad_category, strict=True))
        ]

    def true_logit(
        self,
        segment: NDArray[np.int64],
        slot: NDArray[np.int64],
        device: NDArray[np.int64],
        hour: NDArray[np.int64],
        site: NDArray[np.int64],
        ad: NDArray[np.int64],
        creative: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        """Vectorised true logit for impressions (all arguments are aligned index arrays)."""
        slot_e, dev_e = np.array(list(SLOTS.values())), np.array(list(DEVICES.values()))
        text_e = self.hook_weight[self.creative_hook[ad, creative]]
        return (  # type: ignore[no-any-return]
            self.config.base_logit + self.seg_cat[segment, self.ad_category[ad]] + slot_e[slot]
            + dev_e[device] + self.hour_effect[hour] + self.site_effect[site] + text_e
        )  # fmt: skip

    def chunks(self) -> Iterator[list[Row]]:
        cfg = self.config
        rng, t0, base = self.world.rng(self.name, cfg.day), EPOCH_MS + cfg.day * DAY_MS, cfg.day * 10**8
        while True:
            r = cfg.requests_per_chunk
            req = {
                "user": rng.choice(self.world.n_users, r, p=self.world.user_activity),
                "slot": rng.integers(0, len(SLOTS), r),
                "device": rng.choice(len(DEVICES), r, p=_DEVICE_P),
                "site": rng.integers(0, cfg.n_sites, r),
                "ts": t0 + np.sort(rng.uniform(0, r / cfg.requests_per_second * 1000.0, r)).astype(np.int64),
                "n": rng.integers(1, cfg.max_candidates + 1, r),
            }
            req["hour"] = (req["ts"] // 3_600_000) % 24
            req["segment"] = self.world.user_segment[req["user"]]
            yield self._rows(rng, req, base)
            t0, base = int(req["ts"][-1]) + 1, base + r

    def _rows(self, rng: np.random.Generator, req: dict[str, NDArray[np.int64]], base: int) -> list[Row]:
        owner = np.repeat(np.arange(req["n"].size), req["n"])
        ads = rng.integers(0, self.config.n_ads, owner.size)
        creative = rng.integers(0, 2, owner.size)
        idx = {k: req[k][owner] for k in ("segment", "slot", "device", "hour", "site")}
        ctr = sigmoid(self.true_logit(ad=ads, creative=creative, **idx))
        click = (rng.random(owner.size) < ctr).tolist()
        bids = np.round(self.ad_bid[ads] * rng.lognormal(0.0, 0.1, owner.size), 4).tolist()
        ctr_l, ads_l, cr_l = ctr.tolist(), ads.tolist(), creative.tolist()
        rows: list[Row] = []
        slots, devices, uids, static = list(SLOTS), list(DEVICES), self.world.user_ids, self._ad_static
        starts = np.concatenate([[0], np.cumsum(req["n"])]).tolist()
        cols = zip(req["user"].tolist(), req["slot"].tolist(), req["device"].tolist(), req["site"].tolist(),
                   req["hour"].tolist(), req["segment"].tolist(), req["ts"].tolist(), strict=True)  # fmt: skip
        for i, (user, slot, device, site, hour, seg, ts) in enumerate(cols):
            seen: set[int] = set()
            cands, truth_ctr, truth_click = [], [], []
            for j in range(starts[i], starts[i + 1]):
                a = ads_l[j]
                if a in seen:  # a request never carries the same ad twice
                    continue
                seen.add(a)
                ad_id, adv, category = static[a]
                cands.append({"ad_id": ad_id, "advertiser_id": adv, "category": category,
                              "creative_id": f"cr{a:05d}{cr_l[j]}", "title": self.creative_title[a][cr_l[j]],
                              "bid": bids[j]})  # fmt: skip
                truth_ctr.append(ctr_l[j])
                truth_click.append(int(click[j]))
            event = {"request_id": f"r{base + i:010d}", "user_id": uids[user], "device": devices[device],
                     "slot": slots[slot], "site_or_app": f"site{site:03d}", "hour": hour,
                     "user_segment": SEGMENTS[seg], "candidates": cands, "ts_ms": ts}  # fmt: skip
            rows.append((event, {"ctr": truth_ctr, "click": truth_click}))
        return rows
