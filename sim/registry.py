"""Build simulated streams by name: ``make_stream("payments", seed=3)``, ``iter_json("ads", 1000)``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, Literal

from sim.ads import AdsConfig, AdsSim
from sim.clickstream import ClickConfig, ClickstreamSim
from sim.payments import PaymentsConfig, PaymentsSim
from sim.pricing import PricingConfig, PricingSim
from sim.stream import SimStream
from sim.support import SupportConfig, SupportSim
from sim.world import World, WorldConfig

logger = logging.getLogger(__name__)

StreamName = Literal["clickstream", "ads", "pricing", "payments", "support"]
STREAMS: dict[str, tuple[type[SimStream], type[Any]]] = {
    "clickstream": (ClickstreamSim, ClickConfig),
    "ads": (AdsSim, AdsConfig),
    "pricing": (PricingSim, PricingConfig),
    "payments": (PaymentsSim, PaymentsConfig),
    "support": (SupportSim, SupportConfig),
}
TOPIC_OF_STREAM = {
    "clickstream": "clickstream.events",
    "ads": "ads.impressions",
    "pricing": "pricing.requests",
    "payments": "payments.transactions",
    "support": "support.messages",
}


@lru_cache(maxsize=8)
def world_for(seed: int = 7, n_users: int = 20_000, n_items: int = 5_000) -> World:
    """A (cached) world for a seed; worlds are immutable, so sharing them is safe."""
    return World.build(WorldConfig(seed=seed, n_users=n_users, n_items=n_items))


def make_stream(name: str, seed: int = 7, world: World | None = None, **config: Any) -> SimStream:
    """A stream of ``world`` (or the default world of ``seed``); ``config`` fields override defaults."""
    try:
        cls, cfg_cls = STREAMS[name]
    except KeyError:
        raise KeyError(f"unknown stream {name!r}; choose from {sorted(STREAMS)}") from None
    return cls(world or world_for(seed), cfg_cls(**config))  # type: ignore[call-arg]


def iter_json(stream: str, n: int | None = None, seed: int = 7, **config: Any) -> Iterator[bytes]:
    """JSON bytes of the first ``n`` events of a stream: the load generator's fast path."""
    return make_stream(stream, seed, **config).iter_json(n)


def iter_records(stream: str, n: int | None = None, seed: int = 7, **config: Any) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` bytes for a Kafka producer, keyed as the topic expects."""
    return make_stream(stream, seed, **config).iter_records(n)
