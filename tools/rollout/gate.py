"""The promotion gate: a candidate goes live only if its live quality is not worse than the live
version's by more than a margin, each measured over at least a minimum number of outcomes.

The measure judged is each service's headline one (the monitor's, :mod:`services.monitor.windows`),
read from the monitor's snapshots on the live-quality topic. Both versions are measured on the
same stream at the same time when the candidate runs as a canary: the key hash splits the keys
at random, so neither gets an easier share of the traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.schemas.rollout import Evidence, QualitySnapshot, VersionQuality


@dataclass(frozen=True)
class Headline:
    metric: str
    higher_is_better: bool


HEADLINES: dict[str, Headline] = {
    "ad_ctr": Headline("auc", True),
    "fraud": Headline("pr_auc", True),
    "pricing": Headline("profit_vs_oracle", True),
    "recommendation": Headline("hit_at_10", True),
}
"""Services the monitor judges, and the measure a promotion is decided on. Support has no
outcomes yet (docs/live-quality.md), so only ``--force`` promotes a support version."""
DEFAULT_MARGIN = 0.01
DEFAULT_MIN_OUTCOMES = 300


def quality_of(snapshot: QualitySnapshot | None) -> VersionQuality | None:
    if snapshot is None:
        return None
    return VersionQuality(version=snapshot.model_version, outcomes=snapshot.outcomes, measures=snapshot.measures)


def judge(service: str, live: VersionQuality | None, candidate: VersionQuality | None, *, margin: float,
          min_outcomes: int) -> tuple[bool, Evidence]:
    """(passed, the evidence and the reason), for ``candidate`` replacing ``live``."""
    headline = HEADLINES.get(service)

    def evidence(reason: str) -> Evidence:
        return Evidence(metric=headline.metric if headline else "none", higher_is_better=bool(headline and
                        headline.higher_is_better), margin=margin, min_outcomes=min_outcomes, live=live,
                        candidate=candidate, reason=reason)

    if headline is None:
        return False, evidence(f"{service} has no live quality measure (the monitor judges "
                               f"{', '.join(HEADLINES)}); promote it with --force")
    for role, quality in (("candidate", candidate), ("live", live)):
        if quality is None:
            return False, evidence(f"no live quality for the {role} version yet: run the candidate as a canary "
                                   "with outcomes flowing to the monitor")
        if quality.outcomes < min_outcomes:
            return False, evidence(f"the {role} version {quality.version} has {quality.outcomes} outcomes; "
                                   f"the gate needs at least {min_outcomes}")
        if headline.metric not in quality.measures:
            return False, evidence(f"the {role} version {quality.version} has no {headline.metric} yet")
    assert live is not None and candidate is not None
    ours, theirs = candidate.measures[headline.metric], live.measures[headline.metric]
    gain = ours - theirs if headline.higher_is_better else theirs - ours
    verdict = (f"{headline.metric} {ours:.4f} for {candidate.version} against {theirs:.4f} for {live.version} "
               f"({gain:+.4f}; allowed loss {margin:.4f}) over {candidate.outcomes} and {live.outcomes} outcomes")
    if gain < -margin:
        return False, evidence(f"worse than live: {verdict}")
    return True, evidence(f"not worse than live: {verdict}")
