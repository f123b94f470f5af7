"""A candidate version beside the live one, and the decisions every instance follows.

:class:`Rollout` belongs to one :class:`~shared.runtime.model_scorer.ModelScorer` and turns with
its batches. Between batches it reads two compacted topics the runtime follows:

* the service's config topic, key ``rollout`` (:class:`~shared.schemas.rollout.RolloutPlan`): a
  candidate in *shadow* or *canary*, switched on, changed and off without a restart. The
  candidate is loaded, verified and warmed up in a background thread, like a hot swap, and runs
  from the first batch after it is ready;
* ``shopstream.model-events``, key ``<service>`` (:class:`~shared.schemas.rollout.ModelEvent`):
  the version the service serves since the latest promotion or rollback. Every instance reads
  the same record, so all of them switch, each between two of its batches, and the version is
  pinned (a newer file in the repository does not replace a promoted version).

Scoring a batch (:meth:`Rollout.score`), with ``predict`` the scorer's own batch function:

* *shadow*: the candidate scores the whole batch first, against the same state, and its state
  writes are rolled back; then the live version scores it as always. The candidate's main
  outputs go to ``<output>.shadow`` with their own lineage headers, and each event's two
  outputs are compared (:mod:`shared.agreement`). A candidate that raises costs the batch
  nothing but the time: the live results stand and the failure is counted.
* *canary*: a stable hash of the event's key (:mod:`shared.runtime.rollout.split`) sends ``share`` of
  the keys to the candidate, which scores its part of the batch, and the live version the rest;
  the results keep the batch's order and every output names the version that made it. A
  candidate that raises on its part is rolled back and the live version scores the whole batch.

Either way each event is scored into the service's outputs once, by one version, inside the
batch's delivery unit, so switches lose nothing and duplicate nothing, in both delivery modes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ValidationError

from shared.agreement import DEFAULT_WINDOW, AgreementView, AgreementWindow
from shared.models.slot import LoadedModel, ModelSlot
from shared.runtime.config import ConfigSource
from shared.runtime.metrics import RolloutMetrics
from shared.runtime.rollout.split import in_canary
from shared.runtime.scorer import Event, Output, Scored, ScoreResult
from shared.runtime.state import StateStore
from shared.schemas.rollout import ROLLOUT_KEY, ModelEvent, RolloutPlan

logger = logging.getLogger(__name__)

Predict = Callable[[Sequence[Event[Any]]], Sequence[ScoreResult]]
ViewOf = Callable[[dict[str, Any]], AgreementView | None]
AGREEMENT_REFRESH_S = 1.0
OFF = RolloutPlan()


def output_json(value: BaseModel | bytes) -> dict[str, Any]:
    """An output's value as the JSON object it is published as."""
    if isinstance(value, bytes):
        parsed = json.loads(value)
        return parsed if isinstance(parsed, dict) else {}
    return value.model_dump(mode="json")


class Rollout:
    """The rollout state of one service process; driven from the scoring thread only."""

    def __init__(self, slot: ModelSlot, service: str, output_topic: str, *, config: ConfigSource,
                 decisions: ConfigSource, state: StateStore | None = None, metrics: RolloutMetrics | None = None,
                 view: ViewOf = lambda _: None, window: int = DEFAULT_WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slot = slot
        self.service = service
        self.shadow_topic = f"{output_topic}.shadow"
        self._config = config
        self._decisions = decisions
        self._state = state
        self._metrics = metrics
        self._view = view
        self._window_size = window
        self._clock = clock
        self.plan = OFF
        """The plan being served (a requested one waits here until its candidate is ready)."""
        self.candidate: LoadedModel | None = None
        self.agreement = AgreementWindow(window)
        self.applied_sequence = 0
        """The latest model decision this process applied."""
        self._loading: dict[str, Future[LoadedModel]] = {}
        self._failed: dict[str, str] = {}
        """version → why it could not be loaded; not tried again until asked for anew."""
        self._read_decision: tuple[object, ModelEvent | None] = (None, None)
        self._read_plan: tuple[object, RolloutPlan | None] = (None, OFF)
        """The raw records last read and what they parsed to: the readers replace a key's value on
        change, so the same object means the same record, and the loop's every turn (between_batches)
        does not validate it again."""
        self._executor: ThreadPoolExecutor | None = None
        self._agreement_at = 0.0
        if metrics is not None:  # 0 until a decision applies: a replica that cannot follow one shows it
            metrics.decision_sequence.labels(service).set(0)

    # -- between batches -----------------------------------------------------------------------

    def live_version_decided(self) -> str | None:
        """The live version of the latest decision on the model-events topic (at start: pin it)."""
        event = self._decision()
        return event.live_version if event is not None else None

    def between_batches(self) -> None:
        self._follow_decision()
        self._follow_plan()

    @property
    def active(self) -> bool:
        return (self.plan.mode != "off" and self.candidate is not None
                and self.candidate.manifest.version != self.slot.current.manifest.version)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _decision(self) -> ModelEvent | None:
        raw = self._decisions.get(self.service)
        if raw is self._read_decision[0]:
            return self._read_decision[1]
        event = None
        if raw is not None:
            try:
                event = ModelEvent.model_validate(raw)
            except ValidationError as error:
                logger.error("model decision for %s is not valid and is ignored: %s", self.service, error)
        self._read_decision = (raw, event)
        return event

    def _follow_decision(self) -> None:
        event = self._decision()
        if event is None or event.sequence == self.applied_sequence:
            return
        target = event.live_version
        if self._failed.get(target) == f"decision {event.sequence}":
            return
        if self.slot.current.manifest.version != target:
            if self.candidate is not None and self.candidate.manifest.version == target:
                ready: LoadedModel | None = self.candidate  # promoting the running candidate: no load
            else:
                ready = self._ready(target, f"decision {event.sequence}")
            if ready is None:
                return
            self.slot.install(ready, pin=True)
        else:
            self.slot.pinned_version = target  # a promoted version stays until the next decision
        self.applied_sequence = event.sequence
        logger.info("model decision %d for %s applied: %s %s (forced=%s, by %s); serving %s", event.sequence,
                    self.service, event.decision, event.version, event.forced, event.requested_by, target)
        if self._metrics is not None:
            self._metrics.decisions.labels(self.service, event.decision, str(event.forced).lower()).inc()
            self._metrics.decision_sequence.labels(self.service).set(event.sequence)

    def _follow_plan(self) -> None:
        raw = self._config.get(ROLLOUT_KEY)
        plan = self._parse_plan(raw)
        if plan is None:
            return
        live = self.slot.current.manifest.version
        if plan.mode == "off" or plan.candidate == live:
            if self.plan != OFF or self.candidate is not None:
                self._serve(OFF, None)
            return
        assert plan.candidate is not None
        if self.candidate is not None and self.candidate.manifest.version == plan.candidate:
            if plan != self.plan:
                self._serve(plan, self.candidate)
            return
        ready = self._ready(plan.candidate, f"rollout {plan.mode}")
        if ready is not None:
            self._serve(plan, ready)

    def _parse_plan(self, raw: dict[str, Any] | None) -> RolloutPlan | None:
        """The plan ``raw`` asks for; ``None`` if it is not valid (the current plan stays)."""
        if raw is self._read_plan[0]:
            return self._read_plan[1]
        plan: RolloutPlan | None = OFF
        if raw is not None:
            try:
                plan = RolloutPlan.model_validate(raw)
            except ValidationError as error:
                logger.error("rollout plan for %s is not valid; keeping %s: %s", self.service, self.plan, error)
                plan = None
        self._read_plan = (raw, plan)
        return plan

    def _ready(self, version: str, purpose: str) -> LoadedModel | None:
        """``version`` once loaded beside the live one; ``None`` while it loads or if it failed."""
        if self._failed.get(version) == purpose:
            return None
        future = self._loading.get(version)
        if future is None:
            self._executor = self._executor or ThreadPoolExecutor(1, thread_name_prefix=f"rollout-{self.service}")
            future = self._executor.submit(self.slot.prepare, version)
            logger.info("%s: loading %s for %s beside %s", self.service, version, purpose,
                        self.slot.current.manifest.version)
            self._loading[version] = future
        if not future.done():
            return None
        del self._loading[version]
        try:
            return future.result()
        except Exception as exc:
            self._failed[version] = purpose
            logger.error("%s: version %s cannot be loaded for %s; serving %s: %s", self.service, version, purpose,
                         self.slot.current.manifest.version, exc)
            return None

    def _serve(self, plan: RolloutPlan, candidate: LoadedModel | None) -> None:
        old_version = self.candidate.manifest.version if self.candidate is not None else None
        new_version = candidate.manifest.version if candidate is not None else None
        if self._metrics is not None and self.candidate is not None:
            for series in list(self._metrics.share._metrics):  # one series at most: this service's
                if series[0] == self.service:
                    self._metrics.share.remove(*series)
        if new_version != old_version:
            self.agreement = AgreementWindow(self._window_size)
            if self._metrics is not None and old_version is not None:
                for series in list(self._metrics.agreement._metrics):
                    if series[:2] == (self.service, old_version):
                        self._metrics.agreement.remove(*series)
        self.plan, self.candidate = plan, candidate
        if candidate is not None:  # the candidate is tried beside the live version, not hot-swapped in
            self.slot.pinned_version = self.slot.current.manifest.version
        self._failed = {v: p for v, p in self._failed.items() if v != new_version}
        if self._metrics is not None and candidate is not None:
            share = 1.0 if plan.mode == "shadow" else plan.share
            self._metrics.share.labels(self.service, plan.mode, new_version).set(share)
            self._metrics.flips.labels(self.service, new_version)  # the series exists from 0: rate() sees a first flip
        logger.info("%s: rollout now %s (candidate %s, share %.3f) beside %s", self.service, plan.mode,
                    new_version, plan.share, self.slot.current.manifest.version)

    # -- scoring ---------------------------------------------------------------------------------

    def score(self, batch: Sequence[Event[Any]], predict: Predict) -> Sequence[ScoreResult]:
        if not batch or not self.active:
            return predict(batch)
        if self.plan.mode == "shadow":
            return self._shadow(batch, predict)
        return self._canary(batch, predict)

    def _candidate_pass(self, events: Sequence[Event[Any]], predict: Predict) -> Sequence[ScoreResult] | None:
        """The candidate's results for ``events``, or ``None`` if it raised (its state writes are
        rolled back either way in shadow mode, on failure in canary mode)."""
        assert self.candidate is not None
        saved = self._state.savepoint() if self._state is not None else None
        try:
            with self.slot.serving(self.candidate):
                results = predict(events)
            if len(results) != len(events):
                raise ValueError(f"{len(results)} results for {len(events)} events")
        except Exception:
            if self._state is not None:
                self._state.roll_back_to(saved)
            logger.exception("%s: candidate %s failed on %d events; the live version's results stand",
                             self.service, self.candidate.manifest.version, len(events))
            if self._metrics is not None:
                self._metrics.failures.labels(self.service, self.plan.mode, self.candidate.manifest.version).inc()
            return None
        if self.plan.mode == "shadow" and self._state is not None:
            self._state.roll_back_to(saved)
        if self._metrics is not None:
            self._metrics.events.labels(self.service, self.plan.mode, self.candidate.manifest.version).inc(len(events))
        return results

    def _shadow(self, batch: Sequence[Event[Any]], predict: Predict) -> Sequence[ScoreResult]:
        assert self.candidate is not None
        candidate = self.candidate
        started = time.perf_counter()
        shadow = self._candidate_pass(batch, predict)
        if self._metrics is not None:
            self._metrics.shadow_seconds.labels(self.service, candidate.manifest.version).observe(
                time.perf_counter() - started)
        live = predict(batch)
        if shadow is None:
            return live
        info = candidate.info
        merged: list[ScoreResult] = []
        flips = 0
        for mine, theirs in zip(live, shadow, strict=True):
            if not (isinstance(mine, Scored) and isinstance(theirs, Scored)):
                merged.append(mine)
                continue
            mains = [o for o in theirs.outputs if o.topic is None]
            flips += self._compare(mine, mains)
            merged.append(Scored([*mine.outputs, *(Output(o.value, o.key, self.shadow_topic, info) for o in mains)]))
        self._report_agreement(candidate.manifest.version, flips)
        return merged

    def _compare(self, live: Scored, candidate_mains: list[Output]) -> int:
        live_mains = [o for o in live.outputs if o.topic is None]
        if not live_mains or not candidate_mains:
            return 0
        mine, theirs = self._view(output_json(live_mains[0].value)), self._view(output_json(candidate_mains[0].value))
        if mine is None or theirs is None:
            return 0
        return int(bool(self.agreement.add(mine, theirs).flipped))

    def _report_agreement(self, version: str, flips: int) -> None:
        if self._metrics is None:
            return
        if flips:
            self._metrics.flips.labels(self.service, version).inc(flips)
        now = self._clock()
        if now - self._agreement_at >= AGREEMENT_REFRESH_S:
            self._agreement_at = now
            for metric, value in self.agreement.summary().items():
                self._metrics.agreement.labels(self.service, version, metric).set(value)

    def _canary(self, batch: Sequence[Event[Any]], predict: Predict) -> Sequence[ScoreResult]:
        assert self.candidate is not None
        picked = [in_canary(e.key, self.plan.share) for e in batch]
        if not any(picked):
            return predict(batch)
        theirs = [i for i, p in enumerate(picked) if p]
        scored = self._candidate_pass([batch[i] for i in theirs], predict)
        if scored is None:
            return predict(batch)
        mine = [i for i, p in enumerate(picked) if not p]
        results: list[ScoreResult | None] = [None] * len(batch)
        for i, result in zip(mine, predict([batch[i] for i in mine]) if mine else [], strict=True):
            results[i] = result
        info = self.candidate.info
        for i, result in zip(theirs, scored, strict=True):
            results[i] = Scored([replace(o, model=info) for o in result.outputs]) if isinstance(result, Scored) \
                else result
        return [r for r in results if r is not None]
