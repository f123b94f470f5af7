"""The live-quality monitor: joins each service's predictions with the shop's outcomes.

It reads the feedback topic (:mod:`shared.schemas.feedback`), where the services' predictions
and the shop's outcomes arrive keyed alike, so both halves of a pair meet in one key's state
(:mod:`services.monitor.joins`). Whichever half comes first waits, in the changelog-backed
state store, for at most ``max_wait_s`` of event time; a sweep after each batch drops what
waited longer and counts it as unmatched. Each completed pair is published to the output
topic and its samples go to the window of its (service, model version), whose measures and
baselines (:mod:`services.monitor.windows`) are exported as gauges every
``refresh_interval_s``.

The windows, the running base rate and the popularity counts live in memory: after a restart
they fill again from new outcomes, while the pending halves survive in the state store.
Samples and counts of a batch are applied only once its ``score()`` has returned, so a batch
the runtime retries is not counted twice.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ValidationError

from services.monitor.joins import (
    ID_JOINS,
    KeyState,
    ListOutcome,
    Pair,
    add_outcome,
    add_prediction,
    add_recommendation,
    expire,
    is_empty,
)
from services.monitor.metrics import LiveQualityMetrics
from services.monitor.settings import MonitorSettings
from services.monitor.windows import Coverage, Popularity, QualityWindows, RunningRate
from shared.runtime.metrics import BusinessMetrics
from shared.runtime.scorer import Event, LoadContext, ModelInfo, Output, Rejected, Scored, Scorer, ScoreResult
from shared.runtime.state import StateStore
from shared.schemas.clickstream import RecoScores
from shared.schemas.feedback import OUTCOME_MODELS, FeedbackRecord, JoinedOutcome
from shared.schemas.rollout import QualitySnapshot

logger = logging.getLogger(__name__)

RECOMMENDATION = "recommendation"


@dataclass
class _Tally:
    """What one batch adds to the in-memory windows and counters, applied after it succeeds."""

    samples: list[tuple[str, str, list[tuple[float, ...]]]] = field(default_factory=list)
    delays: list[tuple[str, float]] = field(default_factory=list)
    unmatched: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    clicks: list[int] = field(default_factory=list)
    ad_labels: list[float] = field(default_factory=list)
    warm_lists: list[tuple[str, list[int]]] = field(default_factory=list)


class MonitorScorer(Scorer[FeedbackRecord]):
    input_schema: ClassVar[type[BaseModel]] = FeedbackRecord
    output_schema: ClassVar[type[BaseModel]] = JoinedOutcome
    stateful: ClassVar[bool] = True

    def __init__(self, settings: MonitorSettings) -> None:
        self.settings = settings
        self._wait_ms = int(settings.max_wait_s * 1000)
        self._state = StateStore()
        self._windows = QualityWindows(settings.window)
        self._ad_rate = RunningRate()
        self._popular = Popularity(settings.top_k)
        self._coverage = Coverage(settings.coverage_lists)
        self._deadlines: dict[int, list[tuple[int, str]]] = defaultdict(list)
        """partition → heap of (event time when a held entry expires, key)."""
        self._swept: list[tuple[int, int, str]] = []
        """Deadlines taken off the heaps by a batch not yet known to have succeeded."""
        self._tally = _Tally()
        self._metrics: LiveQualityMetrics | None = None
        self._refreshed_at = -math.inf
        self._joined: Counter[tuple[str, str]] = Counter()
        """Pairs joined per (service, version) since the start, for the published snapshots."""
        self._snapshot_at = -math.inf

    def load(self, context: LoadContext) -> None:
        if context.state is not None:
            self._state = context.state

    @property
    def model_info(self) -> ModelInfo:
        return ModelInfo(name="monitor", version="1", sha256="0" * 64, provider="none")

    def compacted_output_topics(self) -> Sequence[str]:
        return (self.settings.quality_topic,) if self.settings.quality_topic else ()

    def on_assign(self, partitions: Sequence[int]) -> None:
        """Rebuild the expiry heaps of restored partitions from the held entries' event times."""
        for partition in partitions:
            heap = self._deadlines[partition] = []
            for key, state in self._state.snapshot(partition).items():
                stamps = [e["t"] for side in ("p", "o") for e in state.get(side, {}).values()]
                stamps += [r[3] for r in state.get("r", [])]
                if stamps:
                    heap.append((int(min(stamps)) + self._wait_ms, key))
            heapq.heapify(heap)

    def on_revoke(self, partitions: Sequence[int]) -> None:
        for partition in partitions:
            self._deadlines.pop(partition, None)

    def score(self, batch: Sequence[Event[FeedbackRecord]]) -> Sequence[ScoreResult]:
        self._restore_swept()
        self._tally = _Tally()
        self._popular.refresh()
        touched: dict[tuple[int, str], KeyState] = {}
        newest: dict[int, int] = {}
        results: list[ScoreResult] = []
        for event in batch:
            record = event.value
            slot = (event.partition, f"{record.service}|{event.key}")
            state = touched.get(slot)
            if state is None:
                state = touched[slot] = self._state.get(*slot) or {}
            try:
                outputs = self._apply(record, state, event.key)
            except ValidationError as error:
                results.append(Rejected(f"invalid_{record.kind}", _first_error(record, error)))
                continue
            except _Unexpected as error:
                results.append(Rejected(error.reason, str(error)))
                continue
            self._schedule(event.partition, slot[1], state)
            newest[event.partition] = max(newest.get(event.partition, record.ts_ms), record.ts_ms)
            results.append(Scored(outputs))
        self._sweep(newest, touched)
        for (partition, key), state in touched.items():
            if is_empty(state):
                self._state.delete(partition, key)
            else:
                self._state.put(partition, key, state)
        self._attach_snapshots(results)
        return results

    def _attach_snapshots(self, results: list[ScoreResult]) -> None:
        """Every ``snapshot_interval_s``, publish each version's measures with the batch's last output
        (a retried batch publishes them again: the topic is compacted, the latest value wins)."""
        topic = self.settings.quality_topic
        if topic is None or time.monotonic() - self._snapshot_at < self.settings.snapshot_interval_s:
            return
        last = next((i for i in range(len(results) - 1, -1, -1) if isinstance(results[i], Scored)), None)
        if last is None:
            return
        self._snapshot_at = time.monotonic()
        snapshots = [Output(s, key=f"{s.service}/{s.model_version}", topic=topic) for s in self.snapshots()]
        scored = results[last]
        assert isinstance(scored, Scored)
        results[last] = Scored([*scored.outputs, *snapshots])

    def snapshots(self) -> list[QualitySnapshot]:
        """The measures of every (service, version) with joined outcomes, this batch's included (its
        tally is folded into the windows only once it succeeds, and a snapshot that left it out
        would lag until the next batch, which on a quiet stream may never come)."""
        pending: dict[tuple[str, str], list[tuple[float, ...]]] = defaultdict(list)
        for name, version, samples in self._tally.samples:
            pending[(name, version)].extend(samples)
        joined = self._joined + Counter((name, version) for name, version, _ in self._tally.samples)
        sizes, now_ms = self._windows.sizes(pending), int(time.time() * 1000)
        return [
            QualitySnapshot(service=name, model_version=version, outcomes=joined[(name, version)],
                            window=sizes[(name, version)], measures=_finite(model), baseline=_finite(baseline),
                            at_ms=now_ms)
            for (name, version), (model, baseline) in self.measures(pending).items()
        ]

    def _apply(self, record: FeedbackRecord, state: KeyState, key: str) -> list[Output]:
        """One record into its key's state; the joined pairs it completes, as outputs."""
        service, limit = record.service, self.settings.pending_per_key
        if service == RECOMMENDATION:
            if record.kind == "outcome":
                raise _Unexpected("unexpected_outcome", "recommendation outcomes are the next clicks, "
                                  "carried by the next predictions; outcome records are not read")
            reco = RecoScores.model_validate(record.record)
            judged = add_recommendation(state, reco, reco.model_version, record.ts_ms, limit,
                                        self.settings.top_k, self._popular.top())
            self._tally.clicks.append(reco.source.item_id)
            if not reco.cold_start:
                self._tally.warm_lists.append((reco.model_version, [i.item_id for i in reco.items]))
            return [self._list_output(key, j) for j in judged]
        join = ID_JOINS[service]
        if record.kind == "prediction":
            prediction = join.prediction_model.model_validate(record.record)
            version = str(getattr(prediction, "model_version"))  # noqa: B009  # every output model has one
            pair = add_prediction(join, state, prediction, version, record.ts_ms, limit)
        else:
            outcome = OUTCOME_MODELS[service].model_validate(record.record)
            pair = add_outcome(join, state, outcome, record.ts_ms, limit)
        return [] if pair is None else [self._pair_output(service, pair)]

    def _pair_output(self, service: str, pair: Pair) -> Output:
        samples = pair.samples
        if service == "ad_ctr":  # the base rate before these outcomes, the baseline's prediction
            rate = self._ad_rate.rate(prior=0.0)
            samples = [(p, y, rate) for p, y in samples]
            self._tally.ad_labels.extend(y for _, y in pair.samples)
        self._tally.samples.append((service, pair.version, samples))
        self._tally.delays.append((service, (pair.observed_at_ms - pair.predicted_at_ms) / 1000))
        values = {k: None if math.isnan(v) else v for k, v in pair.values.items()}
        return Output(JoinedOutcome(service=service, model_version=pair.version,  # type: ignore[arg-type]
                                    join_id=pair.join_id, predicted_at_ms=pair.predicted_at_ms,
                                    observed_at_ms=pair.observed_at_ms, values=values))

    def _list_output(self, key: str, judged: ListOutcome) -> Output:
        sample = (judged.hit, judged.ndcg, judged.popular_hit, judged.popular_ndcg)
        self._tally.samples.append((RECOMMENDATION, judged.version, [sample]))
        self._tally.delays.append((RECOMMENDATION, (judged.observed_at_ms - judged.predicted_at_ms) / 1000))
        return Output(JoinedOutcome(service=RECOMMENDATION, model_version=judged.version,
                                    join_id=f"{key}@{judged.predicted_at_ms}",
                                    predicted_at_ms=judged.predicted_at_ms, observed_at_ms=judged.observed_at_ms,
                                    values={"hit": judged.hit, "ndcg": judged.ndcg,
                                            "popular_hit": judged.popular_hit, "popular_ndcg": judged.popular_ndcg}))

    def _schedule(self, partition: int, key: str, state: KeyState) -> None:
        """Remember when this key's newest held entry expires (older ones were scheduled before)."""
        stamps = [e["t"] for side in ("p", "o") for e in state.get(side, {}).values()]
        stamps += [r[3] for r in state.get("r", [])]
        if stamps:
            heapq.heappush(self._deadlines[partition], (int(max(stamps)) + self._wait_ms, key))

    def _sweep(self, newest: dict[int, int], touched: dict[tuple[int, str], KeyState]) -> None:
        """Drop the held entries older than the wait, measured against each partition's newest event."""
        for partition, now in newest.items():
            heap = self._deadlines[partition]
            while heap and heap[0][0] <= now:
                deadline, key = heapq.heappop(heap)
                self._swept.append((partition, deadline, key))
                state = touched.get((partition, key))
                if state is None:
                    state = self._state.get(partition, key)
                    if state is None:
                        continue
                    touched[(partition, key)] = state
                predictions, outcomes = expire(state, now - self._wait_ms)
                service = key.split("|", 1)[0]
                if predictions:
                    self._tally.unmatched[(service, "prediction_expired")] += predictions
                if outcomes:
                    self._tally.unmatched[(service, "outcome_expired")] += outcomes
                self._schedule(partition, key, state)

    def _restore_swept(self) -> None:
        """Put back the deadlines a failed batch took (its state changes were discarded)."""
        for partition, deadline, key in self._swept:
            heapq.heappush(self._deadlines[partition], (deadline, key))
        self._swept = []

    def record_business_metrics(self, service: str, results: Sequence[ScoreResult], metrics: BusinessMetrics) -> None:
        """The batch succeeded: fold its tally into the windows and counters, refresh the gauges."""
        self._swept = []
        tally, self._tally = self._tally, _Tally()
        if self._metrics is None:
            self._metrics = LiveQualityMetrics(metrics.registry)
        m = self._metrics
        for name, version, samples in tally.samples:
            self._windows.add(name, version, samples)
            m.outcomes.labels(name, version).inc()
            self._joined[(name, version)] += 1
        for name, seconds in tally.delays:
            m.join_delay.labels(name).observe(max(seconds, 0.0))
        for (name, reason), count in tally.unmatched.items():
            m.unmatched.labels(name, reason).inc(count)
        self._ad_rate.add(tally.ad_labels)
        for item in tally.clicks:
            self._popular.add(item)
        for version, items in tally.warm_lists:
            self._coverage.add(version, items)
        if time.monotonic() - self._refreshed_at >= self.settings.refresh_interval_s:
            self.refresh()

    def refresh(self) -> None:
        """Recompute every window's measures and set the gauges."""
        self._refreshed_at = time.monotonic()
        if self._metrics is None:
            return
        sizes = self._windows.sizes()
        for (name, version), (model, baseline) in self.measures().items():
            self._metrics.publish(name, version, model, baseline, sizes[(name, version)])

    def measures(self, pending: dict[tuple[str, str], list[tuple[float, ...]]] | None = None,
                 ) -> dict[tuple[str, str], tuple[dict[str, float], dict[str, float]]]:
        """The current (model, baseline) measures per (service, version), as the gauges show them
        (with ``pending``: as they will be once those samples are in the windows)."""
        out = self._windows.measures(pending)
        distinct, catalogue = self._coverage.distinct(), self.settings.catalogue_items
        for (name, version), (model, baseline) in out.items():
            if name == RECOMMENDATION:
                model["coverage"] = distinct.get(version, 0) / catalogue
                baseline["coverage"] = len(self._popular.top()) / catalogue
        return out


class _Unexpected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _finite(measures: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in measures.items() if math.isfinite(v)}


def _first_error(record: FeedbackRecord, error: ValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{record.service} {record.kind}: {where or 'record'}: {first['msg']}"
