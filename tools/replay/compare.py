"""``--compare``: the replayed outputs beside the live ones, joined by their lineage headers.

Every output the runtime writes names the input record it came from (``x-source-partition`` and
``x-source-offset``), so a replayed output and the live output of the same input record meet on
that pair. Each pair is compared with the scorer's ``agreement_view`` (:mod:`shared.agreement`):
``score_correlation``, ``decision_flip_rate`` and ``top_k_overlap`` over every pair. A view of
``None`` makes a pair not comparable; it is joined and counted, not measured.

Only the first output per input record counts on each side (at-least-once delivery may have
written a live output twice).
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.agreement import DEFAULT_TOP_K, AgreementView, AgreementWindow
from shared.schemas import headers as h
from tools.replay.ranges import PartitionRange

logger = logging.getLogger(__name__)

SourceKey = tuple[int, int]
"""(source partition, source offset) of the input record an output came from."""
HeaderPairs = Sequence[tuple[str, str | bytes | None]]
ViewOf = Callable[[dict[str, Any]], AgreementView | None]
MEASURES = ("score_correlation", "decision_flip_rate", "top_k_overlap")


def header(headers: HeaderPairs | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    return None


def source_of(headers: HeaderPairs | None) -> SourceKey | None:
    partition, offset = header(headers, h.SOURCE_PARTITION), header(headers, h.SOURCE_OFFSET)
    if partition is None or offset is None or not partition.isdigit() or not offset.isdigit():
        return None
    return int(partition), int(offset)


@dataclass(slots=True)
class CompareReport:
    replayed: int
    """Replayed outputs with lineage headers."""
    matched: int
    """Replayed outputs whose live output was found."""
    compared: int
    """Matched pairs both of whose views could be compared."""
    live_missing: int
    """Replayed outputs with no live output (the live service rejected the record, or has not scored it)."""
    live_only: int
    """Live outputs of the range with no replayed output (the replay rejected the record)."""
    live_versions: dict[str, int] = field(default_factory=dict)
    """Live outputs of the range by the model version that made them (``x-model-version``)."""
    score_correlation: float | None = None
    decision_flip_rate: float | None = None
    top_k_overlap: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def table(self, replay_version: str, live_topic: str) -> str:
        rows: list[tuple[str, str]] = [
            ("matched pairs", f"{self.matched} of {self.replayed}"), ("compared", str(self.compared)),
            ("live outputs missing", str(self.live_missing)), ("live only", str(self.live_only)),
            *((name, "n/a" if value is None else f"{value:.4f}")
              for name, value in zip(MEASURES, self.measures(), strict=True)),
            ("live model versions", ", ".join(f"{v}: {n}" for v, n in sorted(self.live_versions.items())) or "none"),
        ]  # fmt: skip
        width = max(len(name) for name, _ in rows)
        lines = [f"replay {replay_version} vs live {live_topic}"]
        lines += [f"  {name:<{width}}  {value}" for name, value in rows]
        return "\n".join(lines)

    def measures(self) -> tuple[float | None, float | None, float | None]:
        return self.score_correlation, self.decision_flip_rate, self.top_k_overlap


class Comparison:
    """Keeps the replayed outputs' views, then joins the live outputs to them as they are read."""

    def __init__(self, view_of: ViewOf, source_topic: str, ranges: Mapping[int, PartitionRange],
                 top_k: int = DEFAULT_TOP_K) -> None:
        self._view_of = view_of
        self._source_topic = source_topic
        self._ranges = ranges
        self._replayed: dict[SourceKey, AgreementView | None] = {}
        self._waiting: set[SourceKey] = set()
        self._live_seen: set[SourceKey] = set()
        self._versions: Counter[str] = Counter()
        self._window = AgreementWindow(size=sys.maxsize, top_k=top_k)  # every pair of the range counts
        self._matched = self._live_only = 0
        self._view_failed = False

    @property
    def complete(self) -> bool:
        """Every replayed output has met its live output (reading more live outputs changes nothing)."""
        return not self._waiting

    def add_replayed(self, headers: HeaderPairs | None, value: bytes | None) -> None:
        key = self._key(headers)
        if key is not None and key not in self._replayed:
            self._replayed[key] = self._view(value)
            self._waiting.add(key)

    def add_live(self, headers: HeaderPairs | None, value: bytes | None) -> None:
        key = self._key(headers)
        if key is None or key in self._live_seen:
            return
        self._live_seen.add(key)
        self._versions[header(headers, h.MODEL_VERSION) or "unknown"] += 1
        if key not in self._replayed:
            self._live_only += 1
            return
        self._waiting.discard(key)
        self._matched += 1
        replayed, live = self._replayed[key], self._view(value)
        if replayed is not None and live is not None:
            self._window.add(live, replayed)

    def report(self) -> CompareReport:
        summary = self._window.summary()
        return CompareReport(
            replayed=len(self._replayed), matched=self._matched, compared=self._window.events,
            live_missing=len(self._waiting), live_only=self._live_only, live_versions=dict(self._versions),
            score_correlation=summary.get("score_correlation"), decision_flip_rate=summary.get("decision_flip_rate"),
            top_k_overlap=summary.get("top_k_overlap"),
        )

    def _key(self, headers: HeaderPairs | None) -> SourceKey | None:
        """The output's source record, if it lies in the replayed range of the replayed topic."""
        key = source_of(headers)
        topic = header(headers, h.SOURCE_TOPIC)
        if key is None or (topic is not None and topic != self._source_topic):
            return None
        window = self._ranges.get(key[0])
        return key if window is not None and window.start <= key[1] < window.end else None

    def _view(self, value: bytes | None) -> AgreementView | None:
        try:
            parsed = json.loads(value or b"")
            return self._view_of(parsed) if isinstance(parsed, dict) else None
        except Exception as exc:  # an output of another schema: not comparable, said once rather than fatal
            if not self._view_failed:
                logger.warning("an output could not be compared (counted as not comparable): %r", exc)
            self._view_failed = True
            return None
