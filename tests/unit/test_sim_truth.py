"""The simulator's ground truth is internally consistent: what it samples matches what it says."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from sim import World, WorldConfig
from sim.ads import AdsConfig, AdsSim
from sim.catalogue import CATEGORY_NAMES
from sim.clickstream import ClickConfig, ClickstreamSim
from sim.payments import COUNTRIES, FraudMix, PaymentsConfig, PaymentsSim
from sim.pricing import PricingConfig, PricingSim


@pytest.fixture(scope="module")
def world() -> World:
    return World.build(WorldConfig(seed=11, n_users=3_000, n_items=1_000))


def test_observed_ctr_matches_true_ctr(world: World) -> None:
    sim = AdsSim(world, AdsConfig(requests_per_chunk=1_000))
    ctr, click = [], []
    for _, truth in sim.iter_dicts(5_000):
        ctr += truth["ctr"]
        click += truth["click"]
    p, y = np.array(ctr[:50_000]), np.array(click[:50_000])
    assert p.size == 50_000
    z = (y.sum() - p.sum()) / np.sqrt((p * (1 - p)).sum())
    assert abs(z) < 4, f"observed CTR {y.mean():.4f} vs true {p.mean():.4f} (z={z:.2f})"
    for lo, hi in [(0.0, 0.03), (0.03, 0.08), (0.08, 1.0)]:  # calibrated in every band, not just on average
        band = (p >= lo) & (p < hi)
        zb = (y[band].sum() - p[band].sum()) / np.sqrt((p[band] * (1 - p[band])).sum())
        assert abs(zb) < 4, f"band [{lo}, {hi}): z={zb:.2f}"


def test_ctr_depends_on_segment_match_and_title_words(world: World) -> None:
    sim = AdsSim(world, AdsConfig(requests_per_chunk=1_000))
    match: list[float] = []
    other: list[float] = []
    hooks: dict[str, list[float]] = defaultdict(list)
    for event, truth in sim.iter_dicts(3_000):
        for cand, p in zip(event["candidates"], truth["ctr"], strict=True):
            same = cand["category"] in {c for c in CATEGORY_NAMES if _segment(c) == event["user_segment"]}
            (match if same else other).append(p)
            hooks[cand["title"].split(":")[0]].append(p)
    assert np.mean(match) > 2 * np.mean(other)
    assert np.mean(hooks["50% Off"]) > 1.5 * np.mean(hooks["Sponsored"])


def _segment(category: str) -> str:
    from sim.world import SEGMENT_OF_CATEGORY

    return SEGMENT_OF_CATEGORY[category]


def test_injected_attack_counts_match_the_configured_mix(world: World) -> None:
    mix = FraudMix(card_testing=20.0, account_takeover=10.0, velocity=5.0)
    rows = list(PaymentsSim(world, PaymentsConfig(mix=mix, chunk_seconds=300.0)).iter_dicts(60_000))
    legit = sum(1 for _, t in rows if not t["is_fraud"])
    episodes = {(t["attack_type"], t["episode"]) for _, t in rows if t["is_fraud"]}
    found = Counter(kind for kind, _ in episodes)
    for kind, rate in zip(("card_testing", "account_takeover", "velocity"), mix.rates(), strict=True):
        expected = rate * legit / 10_000
        assert abs(found[kind] - expected) <= 3, f"{kind}: {found[kind]} episodes, expected {expected:.1f}"


def test_attack_patterns_look_like_their_type(world: World) -> None:
    cfg = PaymentsConfig(mix=FraudMix(20.0, 20.0, 20.0), chunk_seconds=300.0, txns_per_second=5.0)
    sim = PaymentsSim(world, cfg)
    by_episode: dict[int, list[dict[str, object]]] = defaultdict(list)
    kinds: dict[int, str] = {}
    rows = list(sim.iter_dicts(40_000))
    cutoff = rows[-1][0]["ts_ms"] - 3_600_000  # episodes starting later may be cut off by the end
    for event, truth in rows:
        if truth["is_fraud"] and (truth["episode"] in by_episode or event["ts_ms"] < cutoff):
            by_episode[truth["episode"]].append(event)
            kinds[truth["episode"]] = truth["attack_type"]
    home = {world.user_id(i): COUNTRIES[int(c)][0] for i, c in enumerate(sim.home)}
    assert len(by_episode) > 50
    for ep, events in by_episode.items():
        assert len({e["card_id"] for e in events}) == 1, "an episode attacks one card"
        span_min = (int(events[-1]["ts_ms"]) - int(events[0]["ts_ms"])) / 60_000  # type: ignore[call-overload]
        if kinds[ep] == "card_testing":
            assert len(events) >= 5 and span_min < 60
        if kinds[ep] == "account_takeover":
            assert all(e["ip_country"] != home[str(e["user_id"])] for e in events)
        if kinds[ep] == "velocity":
            assert len(events) >= 8 and span_min < 120


def test_two_shops_differ_in_profiles_and_mix(world: World) -> None:
    a = PaymentsSim(world, PaymentsConfig(shop="A", mix=FraudMix(20.0, 2.0, 2.0), chunk_seconds=300.0))
    b = PaymentsSim(world, PaymentsConfig(shop="B", mix=FraudMix(2.0, 2.0, 20.0), chunk_seconds=300.0))
    share = [Counter(t["attack_type"] for _, t in s.iter_dicts(30_000) if t["is_fraud"]) for s in (a, b)]
    assert share[0]["card_testing"] > share[0]["velocity"]
    assert share[1]["velocity"] > share[1]["card_testing"]
    assert not np.array_equal(a.typical_usd, b.typical_usd)


def test_observed_units_average_to_true_units(world: World) -> None:
    sim = PricingSim(world, PricingConfig(n_skus=200))
    mu, obs = np.zeros(0), np.zeros(0)
    rows = list(sim.iter_dicts(20_000))
    mu = np.array([t["true_units"] for _, t in rows])
    obs = np.array([t["observed_units"] for _, t in rows])
    var = mu + mu**2 / sim.config.dispersion
    z = (obs - mu).sum() / np.sqrt(var.sum())
    assert abs(z) < 4, f"mean observed {obs.mean():.2f} vs true {mu.mean():.2f} (z={z:.2f})"
    # true_units is what the stream used: recomputing it from the event reproduces the truth
    event, truth = rows[123]
    assert float(sim.units_for(event, event["current_price"])) == pytest.approx(truth["true_units"])


def test_oracle_price_beats_every_price_on_a_grid(world: World) -> None:
    sim = PricingSim(world, PricingConfig(n_skus=100))
    for event, truth in sim.iter_dicts(100):
        grid = np.linspace(event["floor"], event["ceiling"], 400)
        profit = (grid - event["unit_cost"]) * sim.units_for(event, grid)
        best = float(profit.max())
        assert truth["oracle_profit"] >= best * (1 - 1e-9)
        assert sim.profit_regret(event, truth["oracle_price"]) == pytest.approx(0.0, abs=1e-12)
        assert sim.profit_regret(event, event["current_price"]) >= -1e-12
    assert np.all(sim.elasticity < -1.0)


def test_demand_falls_with_own_price_and_rises_with_competitor_price(world: World) -> None:
    sim = PricingSim(world, PricingConfig(n_skus=50))
    prices = np.linspace(1.0, 50.0, 20)
    units = sim.true_units(3, prices, 10, 20.0)
    assert np.all(np.diff(units) < 0)
    assert sim.true_units(3, 10.0, 10, 25.0) > sim.true_units(3, 10.0, 10, 20.0)
    assert sim.true_units(3, 10.0, 10, 20.0, feature=True) > sim.true_units(3, 10.0, 10, 20.0)


def test_next_item_sampling_matches_the_true_distribution(world: World) -> None:
    sim = ClickstreamSim(world, ClickConfig())
    rng = np.random.default_rng(0)
    user, last = 42, 17
    items, _ = sim._new_items(rng, np.full(40_000, user), np.full(40_000, last))
    observed = np.bincount(items, minlength=world.catalogue.n_items) / items.size
    truth = sim.true_next_distribution(user, last)
    assert truth.sum() == pytest.approx(1.0)
    cats = world.catalogue.category
    obs_c, true_c = np.bincount(cats, observed), np.bincount(cats, truth)
    assert np.abs(obs_c - true_c).max() < 0.01
    related = sim.related[last]
    assert observed[related].sum() == pytest.approx(truth[related].sum(), abs=0.01)


def test_users_click_mostly_in_their_favourite_category(world: World) -> None:
    sim = ClickstreamSim(world, ClickConfig(sessions_per_chunk=1_000))
    top = world.category_probs.argmax(axis=1)
    hits, n = 0, 0
    for event, truth in sim.iter_dicts(20_000):
        if event["event_type"] == "view":
            n += 1
            hits += event["category"] == CATEGORY_NAMES[top[truth["user_index"]]]
    base = 1 / len(CATEGORY_NAMES)
    assert hits / n > 3 * base, f"top-taste share {hits / n:.3f} vs uniform {base:.3f}"


def test_a_later_ads_day_has_new_requests_and_drifted_effects(world: World) -> None:
    day0 = AdsSim(world, AdsConfig(requests_per_chunk=200))
    day1 = AdsSim(world, AdsConfig(requests_per_chunk=200, day=1))
    e0 = [e for e, _ in day0.iter_dicts(200)]
    e1 = [e for e, _ in day1.iter_dicts(200)]
    assert min(e["ts_ms"] for e in e1) >= max(e["ts_ms"] for e in e0)
    assert not {e["request_id"] for e in e0} & {e["request_id"] for e in e1}
    shift = np.abs(day1.seg_cat - day0.seg_cat).mean()
    assert 0.05 < shift < 0.5  # the same world, a little different: fine-tuning has something to learn
    assert np.array_equal(day0.ad_bid, day1.ad_bid)
