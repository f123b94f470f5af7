"""Measure how fast each simulated stream produces events: ``python -m tools.bench.sim_rates``.

Three paths per stream: plain dicts (training-set generation), JSON bytes (the load
generator) and validated pydantic events. Rates use process CPU time, so they stay
meaningful on a shared machine; wall-clock rates are printed beside them.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sim.registry import STREAMS, make_stream

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rate:
    stream: str
    path: str
    n: int
    cpu_per_s: float
    wall_per_s: float


def measure(stream: str, path: str, n: int, seed: int = 7) -> Rate:
    """Events per second for one stream and path (the world and stream set-up is not timed)."""
    sim = make_stream(stream, seed)
    paths: dict[str, Callable[[int], Iterator[Any]]] = {
        "dicts": sim.iter_dicts,
        "json": sim.iter_json,
        "pydantic": sim.iter_events,
    }
    next(iter(paths[path](1)))  # warm the world's caches (related items, id strings) untimed
    it = paths[path](n)
    cpu, wall = time.process_time(), time.perf_counter()
    count = sum(1 for _ in it)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return Rate(stream, path, count, count / max(cpu, 1e-9), count / max(wall, 1e-9))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="simulated shop throughput")
    parser.add_argument("--n", type=int, default=200_000, help="events per stream for dicts/json")
    parser.add_argument("--n-validated", type=int, default=20_000, help="events per stream for pydantic")
    parser.add_argument("--streams", nargs="*", default=sorted(STREAMS))
    args = parser.parse_args(argv)
    print(f"{'stream':<12} {'path':<9} {'events':>9} {'events/s (cpu)':>15} {'events/s (wall)':>16}")
    for stream in args.streams:
        for path in ("dicts", "json", "pydantic"):
            r = measure(stream, path, args.n_validated if path == "pydantic" else args.n)
            print(f"{r.stream:<12} {r.path:<9} {r.n:>9} {r.cpu_per_s:>15,.0f} {r.wall_per_s:>16,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
