"""The served recommender judged as the live monitor judges it, on the simulated shop's stream.

``python -m export.recommendation.online_check [--version v0002] [--skip 400000] [--events 20000]``

Events ``skip - warmup .. skip + events`` of the seeded clickstream (past the training data) go
through :class:`services.recommendation.scorer.RecommendationScorer` in batches of ``--batch`` (64),
from an empty state store; the ``warmup`` events (20,000) only fill the users' histories and the
popularity counts, as a service that has been running a while would have them, and the lists of
the ``events`` after them are judged. Each warm list
(``cold_start`` false) made at event ``e`` for user ``u`` is judged against its *outcome*: ``u``'s
next click whose item differs from ``e``'s (adding the item just viewed to the cart does not
count); a list whose user clicks nothing else in the range is not counted. Beside the model, on
the same lists' outcomes:

* **popularity**: the ten items clicked most often so far (before ``e``, warm-up included), the
  baseline of the live monitor;
* **oracle**: the ten most likely items of the simulator's own next-item distribution
  (:meth:`sim.clickstream.ClickstreamSim.true_next_distribution`, knowing whether the outcome
  opens a new session), the most any model can hope for;
* **coverage**: distinct items among the warm lists of each run of 1,000 consecutive events,
  over the catalogue (the mean and the smallest of the runs).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.recommendation.scorer import RecommendationScorer
from services.recommendation.settings import RecommendationSettings
from shared.runtime.config import StaticConfig
from shared.runtime.scorer import Event, LoadContext, Scored
from shared.runtime.state import StateStore
from shared.schemas.clickstream import ClickEvent, RecoScores
from sim.clickstream import ClickstreamSim
from sim.registry import world_for

logger = logging.getLogger(__name__)

K = 10
COVERAGE_EVENTS = 1000
Row = tuple[dict[str, Any], dict[str, Any]]


@dataclass(frozen=True)
class OnlineReport:
    version: str
    lists: int
    """Warm lists with an outcome (the denominator of the hit rates)."""
    hit_model: float
    hit_popular: float
    hit_oracle: float
    ndcg_model: float
    ndcg_popular: float
    coverage_mean: float
    coverage_min: float
    distinct_items: int
    """Distinct items among all warm lists."""
    warm_share: float
    """Share of the judged events whose user had enough history for the model (not ``cold_start``)."""
    top_first_share: float
    """Share of warm lists led by the most common first item (1.0: everyone sees the same list)."""

    @property
    def ratio(self) -> float:
        return self.hit_model / max(self.hit_popular, 1e-12)

    def lines(self) -> list[str]:
        return [
            f"model {self.version}: {self.lists} warm lists with an outcome, {self.warm_share:.0%} of the lists warm",
            f"HR@{K}    model {self.hit_model:.4f}  popularity {self.hit_popular:.4f}  ratio {self.ratio:.2f}x"
            f"  oracle {self.hit_oracle:.4f} ({self.hit_oracle / max(self.hit_popular, 1e-12):.2f}x)",
            f"NDCG@{K}  model {self.ndcg_model:.4f}  popularity {self.ndcg_popular:.4f}",
            f"coverage of {COVERAGE_EVENTS} events: mean {self.coverage_mean:.1%}  min {self.coverage_min:.1%};"
            f"  {self.distinct_items} distinct items in all; most common first item leads {self.top_first_share:.1%}",
        ]


def next_outcomes(users: Sequence[str], items: Sequence[int]) -> list[int | None]:
    """Per event, the index of its user's next event with another item (``None``: none in range)."""
    out: list[int | None] = [None] * len(users)
    after: dict[str, tuple[int, int | None]] = {}
    """User → (their next event, the first event after it with a different item)."""
    for i in range(len(users) - 1, -1, -1):
        seen = after.get(users[i])
        if seen is None:
            after[users[i]] = (i, None)
            continue
        j, beyond = seen
        out[i] = j if items[j] != items[i] else beyond
        after[users[i]] = (i, out[i])
    return out


def popular_before(items: Sequence[int], n_items: int) -> np.ndarray:
    """``[events, K]``: the K most clicked items before each event (ties: lower id first)."""
    counts = np.zeros(n_items, dtype=np.int64)
    out = np.empty((len(items), K), dtype=np.int64)
    top = np.arange(K)
    for i, item in enumerate(items):
        out[i] = top
        counts[item] += 1
        if counts[item] >= counts[top[-1]] and item not in top:
            top = np.argsort(-counts, kind="stable")[:K]
        elif item in top:
            top = top[np.argsort(-counts[top], kind="stable")]
    return out


def oracle_top(sim: ClickstreamSim, rows: Sequence[Row], at: int, outcome: int) -> np.ndarray:
    """The K most likely next items for event ``at``'s user, given whether ``outcome`` opens a session."""
    event, truth = rows[at]
    same = rows[outcome][0]["session_id"] == event["session_id"]
    p = sim.true_next_distribution(truth["user_index"], event["item_id"] if same else None)
    p[event["item_id"]] = 0.0  # the outcome is another item by definition
    return np.argpartition(-p, K)[:K]


def _gain(lists: Sequence[Sequence[int]], targets: Sequence[int]) -> tuple[float, float]:
    """(HR@K, NDCG@K) of ranked lists against their targets."""
    hits = ndcg = 0.0
    for ranked, target in zip(lists, targets, strict=True):
        if target in ranked[:K]:
            hits += 1
            ndcg += 1.0 / np.log2(list(ranked).index(target) + 2.0)
    n = max(len(targets), 1)
    return hits / n, ndcg / n


def score_stream(scorer: RecommendationScorer, rows: Sequence[Row], batch: int) -> list[RecoScores]:
    """The scorer's recommendation for every event, ``batch`` events per ``score()`` call."""
    out: list[RecoScores] = []
    for start in range(0, len(rows), batch):
        clicks = [ClickEvent.model_validate(e) for e, _ in rows[start : start + batch]]
        events = [Event(c, c.user_id, "clickstream.events", 0, start + i, c.ts_ms) for i, c in enumerate(clicks)]
        for result in scorer.score(events):
            assert isinstance(result, Scored), result
            value = result.outputs[0].value
            out.append(RecoScores.model_validate_json(value if isinstance(value, bytes) else str(value)))
    return out


def check(models_dir: Path, version: str | None = None, seed: int = 7, skip: int = 400_000, events: int = 20_000,
          batch: int = 64, warmup: int = 20_000) -> OnlineReport:
    world = world_for(seed)
    sim = ClickstreamSim(world)
    warmup = min(warmup, skip)
    rows = list(sim.iter_dicts(skip + events))[skip - warmup :]
    settings = RecommendationSettings(models_dir=models_dir, model_version=version, model_poll_interval_s=3600,
                                      intra_op_threads=1, execution_providers=["cpu"])
    scorer = RecommendationScorer(settings)
    scorer.load(LoadContext(settings=settings, state=StateStore(), config=StaticConfig()))
    recos = score_stream(scorer, rows, batch)
    items = [e["item_id"] for e, _ in rows]
    outcomes = next_outcomes([e["user_id"] for e, _ in rows], items)
    popular = popular_before(items, world.catalogue.n_items)
    judged = range(warmup, len(rows))
    counted = [i for i in judged if not recos[i].cold_start and outcomes[i] is not None]
    lists = [[s.item_id for s in recos[i].items] for i in counted]
    targets = [items[outcomes[i]] for i in counted]  # type: ignore[index]
    hit_model, ndcg_model = _gain(lists, targets)
    hit_pop, ndcg_pop = _gain([popular[i].tolist() for i in counted], targets)
    hit_oracle, _ = _gain([oracle_top(sim, rows, i, outcomes[i]).tolist() for i in counted], targets)  # type: ignore[arg-type]
    coverage = [
        len({s.item_id for r in recos[start : start + COVERAGE_EVENTS] if not r.cold_start for s in r.items})
        / world.catalogue.n_items
        for start in range(warmup, len(recos) - COVERAGE_EVENTS + 1, COVERAGE_EVENTS)
    ]
    warm = [r for r in recos[warmup:] if not r.cold_start]
    firsts = np.bincount([r.items[0].item_id for r in warm if r.items])
    return OnlineReport(
        version=scorer.model_info.version, lists=len(counted), hit_model=hit_model, hit_popular=hit_pop,
        hit_oracle=hit_oracle, ndcg_model=ndcg_model, ndcg_popular=ndcg_pop,
        coverage_mean=float(np.mean(coverage)) if coverage else 0.0,
        coverage_min=float(np.min(coverage)) if coverage else 0.0,
        distinct_items=len({s.item_id for r in warm for s in r.items}), warm_share=len(warm) / max(events, 1),
        top_first_share=float(firsts.max() / max(firsts.sum(), 1)) if firsts.size else 0.0,
    )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--models-dir", type=Path, default=Path(__file__).resolve().parents[2] / "models")
    p.add_argument("--version", default=None, help="model version (default: the newest, as served)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--skip", type=int, default=400_000, help="events of the stream before the evaluated range")
    p.add_argument("--events", type=int, default=20_000, help="events judged")
    p.add_argument("--warmup", type=int, default=20_000, help="events scored before them, not judged")
    p.add_argument("--batch", type=int, default=64)
    ns = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    report = check(ns.models_dir, ns.version, ns.seed, ns.skip, ns.events, ns.batch, ns.warmup)
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
