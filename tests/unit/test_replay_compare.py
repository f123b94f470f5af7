"""``shopstream replay --compare``: replayed and live outputs joined by their lineage headers, in memory."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.agreement import AgreementView
from shared.schemas import headers as h
from tools.replay.compare import Comparison, source_of
from tools.replay.ranges import PartitionRange

TOPIC = "clicks"
RANGES = {0: PartitionRange(0, 100, 110), 1: PartitionRange(1, 0, 5)}


def record(partition: int, offset: int, items: list[int], version: str = "v0002",
           topic: str = TOPIC) -> tuple[list[tuple[str, str | bytes | None]], bytes]:
    """Headers and value of one recommendation output, as the runtime writes them."""
    headers: list[tuple[str, str | bytes | None]] = [
        (h.MODEL_VERSION, version.encode()), (h.SOURCE_TOPIC, topic.encode()),
        (h.SOURCE_PARTITION, b"%d" % partition), (h.SOURCE_OFFSET, b"%d" % offset),
    ]
    value = {"items": [{"item_id": i, "score": 1.0 / (rank + 1) + i / 1000} for rank, i in enumerate(items)]}
    return headers, json.dumps(value).encode()


def reco_view(output: dict[str, Any]) -> AgreementView | None:
    items = [str(i["item_id"]) for i in output["items"]]
    if not items:
        return None  # stands for a scorer that cannot compare this output
    return AgreementView(scores={str(i["item_id"]): i["score"] for i in output["items"]}, decision=items[0],
                         ranking=items)


def comparison(top_k: int = 3) -> Comparison:
    return Comparison(reco_view, TOPIC, RANGES, top_k=top_k)


def every_source() -> list[tuple[int, int]]:
    return [(p, o) for p, r in RANGES.items() for o in range(r.start, r.end)]


def test_identical_outputs_agree_completely() -> None:
    c = comparison()
    for p, o in every_source():
        c.add_replayed(*record(p, o, [o, o + 1, o + 2], "v0002"))
    assert not c.complete
    for p, o in reversed(every_source()):  # the live topic's order is not the input's
        c.add_live(*record(p, o, [o, o + 1, o + 2], "v0002"))
    assert c.complete
    report = c.report()
    assert (report.replayed, report.matched, report.compared, report.live_missing, report.live_only) == (15, 15, 15,
                                                                                                         0, 0)
    assert report.score_correlation == pytest.approx(1.0)
    assert report.decision_flip_rate == 0.0
    assert report.top_k_overlap == 1.0
    assert report.live_versions == {"v0002": 15}


def test_another_version_shows_flips_and_a_smaller_overlap() -> None:
    c = comparison()
    for p, o in every_source():
        c.add_replayed(*record(p, o, [o + 1, o, o + 9], "v0001"))  # first item differs, 2 of 3 shared
        c.add_live(*record(p, o, [o, o + 1, o + 2], "v0002"))
    report = c.report()
    assert report.matched == 15
    assert report.decision_flip_rate == 1.0
    assert report.top_k_overlap == pytest.approx(2 / 3)
    assert report.score_correlation is not None and report.score_correlation < 1.0


def test_unmatched_outputs_on_either_side_are_counted_not_compared() -> None:
    c = comparison()
    c.add_replayed(*record(0, 100, [1, 2, 3]))
    c.add_replayed(*record(0, 101, [1, 2, 3]))  # its live output never comes
    c.add_live(*record(0, 100, [1, 2, 3], "v0001"))
    c.add_live(*record(0, 102, [1, 2, 3], "v0002"))  # the replay rejected this record
    report = c.report()
    assert (report.replayed, report.matched, report.live_missing, report.live_only) == (2, 1, 1, 1)
    assert report.live_versions == {"v0001": 1, "v0002": 1}
    assert not c.complete


def test_live_outputs_outside_the_range_or_of_another_topic_or_repeated_are_ignored() -> None:
    c = comparison()
    c.add_replayed(*record(1, 0, [1, 2, 3]))
    c.add_live(*record(1, 5, [1, 2, 3]))  # past the range's end
    c.add_live(*record(0, 99, [1, 2, 3]))  # before its start
    c.add_live(*record(2, 0, [1, 2, 3]))  # a partition not replayed
    c.add_live(*record(1, 0, [7, 8, 9], topic="other"))  # the same position of another input topic
    c.add_live(*record(1, 0, [1, 2, 3]))
    c.add_live(*record(1, 0, [4, 5, 6]))  # delivered twice: the first counts
    report = c.report()
    assert (report.matched, report.live_only, report.top_k_overlap) == (1, 0, 1.0)
    assert report.live_versions == {"v0002": 1}


def test_outputs_a_scorer_cannot_view_are_joined_but_not_measured() -> None:
    c = comparison()
    c.add_replayed(*record(0, 100, []))
    c.add_replayed(*record(0, 101, [1, 2, 3]))
    c.add_live(*record(0, 100, [1, 2, 3]))
    c.add_live(*record(0, 101, [], "v0002"))
    c.add_replayed([(h.SOURCE_PARTITION, b"0"), (h.SOURCE_OFFSET, b"103")], b"not json")
    c.add_live(*record(0, 103, [1, 2, 3]))
    report = c.report()
    assert (report.matched, report.compared) == (3, 0)
    assert report.score_correlation is None and report.decision_flip_rate is None and report.top_k_overlap is None


def test_outputs_without_lineage_headers_join_nothing() -> None:
    assert source_of([(h.SOURCE_PARTITION, b"0")]) is None
    assert source_of([(h.SOURCE_PARTITION, b"x"), (h.SOURCE_OFFSET, b"1")]) is None
    assert source_of([(h.SOURCE_PARTITION, "1"), (h.SOURCE_OFFSET, b"7")]) == (1, 7)
    c = comparison()
    c.add_replayed(None, b"{}")
    c.add_live([], b"{}")
    assert c.report().replayed == 0 and c.report().live_only == 0


def test_the_report_prints_as_a_table_and_serialises_as_json() -> None:
    c = comparison()
    c.add_replayed(*record(0, 100, [1]))
    c.add_live(*record(0, 100, [1], "v0002"))
    report = c.report()
    table = report.table("v0001", "reco.scores")
    for line in ("matched pairs", "live outputs missing", "score_correlation", "decision_flip_rate",
                 "top_k_overlap", "live model versions   v0002: 1"):
        assert line in table
    assert "n/a" in table  # one pair of scores: no correlation
    assert json.loads(json.dumps(report.to_json()))["live_versions"] == {"v0002": 1}
