"""The promotion gate: margin, minimum outcomes, the headline measure per service, the reasons."""

from __future__ import annotations

import pytest

from shared.schemas.rollout import VersionQuality
from tools.rollout.decisions import next_event
from tools.rollout.gate import judge


def quality(version: str, auc: float | None, outcomes: int = 1000) -> VersionQuality:
    return VersionQuality(version=version, outcomes=outcomes, measures={} if auc is None else {"auc": auc})


@pytest.mark.parametrize(("candidate", "passed"), [(0.70, True), (0.691, True), (0.689, False), (0.50, False)])
def test_a_candidate_passes_unless_worse_than_live_by_more_than_the_margin(candidate: float, passed: bool) -> None:
    ok, evidence = judge("ad_ctr", quality("v1", 0.70), quality("v2", candidate), margin=0.01, min_outcomes=300)
    assert ok is passed
    assert evidence.metric == "auc" and evidence.higher_is_better and evidence.candidate is not None
    assert evidence.reason.startswith("not worse than live" if passed else "worse than live")


@pytest.mark.parametrize(("live", "candidate", "reason"), [
    (quality("v1", 0.7), quality("v2", 0.9, outcomes=299), "the candidate version v2 has 299 outcomes"),
    (quality("v1", 0.7, outcomes=10), quality("v2", 0.9), "the live version v1 has 10 outcomes"),
    (quality("v1", 0.7), None, "no live quality for the candidate version yet"),
    (None, quality("v2", 0.9), "no live quality for the live version yet"),
    (quality("v1", 0.7), quality("v2", None), "the candidate version v2 has no auc yet"),
])
def test_without_enough_evidence_the_gate_refuses_and_says_why(
    live: VersionQuality | None, candidate: VersionQuality | None, reason: str
) -> None:
    ok, evidence = judge("ad_ctr", live, candidate, margin=0.01, min_outcomes=300)
    assert not ok and reason in evidence.reason


def test_a_service_the_monitor_does_not_judge_needs_force() -> None:
    ok, evidence = judge("support", quality("v1", 0.7), quality("v2", 0.9), margin=0.01, min_outcomes=0)
    assert not ok and "--force" in evidence.reason and evidence.metric == "none"


def test_each_decision_carries_the_whole_state_and_the_next_sequence() -> None:
    first = next_event(None, "ad_ctr", "promoted", "v2", "v2", replaced=("v1",), forced=True, evidence=None, who="me")
    assert first.sequence == 1 and first.replaced == ("v1",) and first.forced
    second = next_event(first, "ad_ctr", "rolled_back", "v1", "v1", replaced=(), forced=False, evidence=None,
                        who="you")
    assert second.sequence == 2 and second.live_version == "v1" and second.requested_by == "you"
