"""The support scorer: what a customer wrote → intent, queue, and whether a person takes it now.

Per micro-batch:

1. the batch's texts are tokenised together by the serving version's own tokenizer (read from
   ``slot.current``'s manifest once per batch, so graph and tokenizer never mix across a swap);
2. the rows run through the graph in groups of similar token lengths (:mod:`services.support.tokens`);
3. each message gets its most probable intent, the top 3, and the queue of that intent (settings,
   overridden by the config topic's ``queues`` key);
4. it is escalated when the probability is below the threshold (``low_confidence``) or when the
   customer has written about the same problem ``repeat_count`` times within the window
   (``repeated_problem``: each customer's recent problems are keyed state, restored from the
   changelog after a restart); escalated messages also go to the escalations topic;
5. only after the model succeeded are the customers' states written (the runtime stages them
   with the batch), so a retried batch counts each message once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from pydantic import BaseModel

from services.support.model import INPUTS, OUTPUTS, GraphRunner, check_manifest, probabilities, top_k
from services.support.outputs import Understood, outputs_for, reasons_of
from services.support.queues import QueueRouter
from services.support.repeats import Entry, RepeatRule, entries_of
from services.support.settings import SupportSettings
from services.support.text import TextPipeline, TextPipelines
from services.support.tokens import CPU_COST, GPU_COST, Tokens, length_groups
from shared.agreement import AgreementView
from shared.errors import ScoringError
from shared.models.manifest import ModelManifest
from shared.models.providers import CPU
from shared.models.slot import ModelSlot
from shared.runtime.config import StaticConfig
from shared.runtime.metrics import BusinessMetrics, observe_many
from shared.runtime.model_scorer import ModelScorer
from shared.runtime.scorer import Event, LoadContext, ScoreResult
from shared.runtime.state import StateStore
from shared.schemas.support import TOP_K, SupportIntent, SupportMessage

logger = logging.getLogger(__name__)


class SupportMetrics:
    """The support service's own business series (beside the shared decisions and score ones)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.queue = PromCounter("shopstream_business_support_routed", "Messages routed, per queue",
                                 ["service", "queue"], registry=registry)  # fmt: skip
        self.escalations = PromCounter(
            "shopstream_business_support_escalations",
            "Escalated messages per reason (one message escalated for both reasons counts in both)",
            ["service", "reason"], registry=registry,
        )


class SupportScorer(ModelScorer[SupportMessage, SupportSettings]):
    input_schema: ClassVar[type[BaseModel]] = SupportMessage
    output_schema: ClassVar[type[BaseModel]] = SupportIntent
    stateful: ClassVar[bool] = True
    model_inputs = INPUTS
    model_outputs = OUTPUTS

    def __init__(self, settings: SupportSettings, slot: ModelSlot | None = None) -> None:
        super().__init__(settings, settings.model_name, slot)
        self._state = StateStore()
        self.router = QueueRouter(settings.queues, settings.default_queue, StaticConfig())
        self._text = TextPipelines()
        self._rule = RepeatRule(settings.repeat_count, settings.repeat_window_s * 1000, settings.max_kept_per_customer)
        self._metrics: SupportMetrics | None = None
        self._last: Understood | None = None
        """The columns of the last batch scored, for the business metrics (its outputs are bytes)."""

    def on_load(self, context: LoadContext) -> None:
        if context.state is not None:
            self._state = context.state
        self.router = QueueRouter(self.settings.queues, self.settings.default_queue, context.config)

    def check_manifest(self, manifest: ModelManifest) -> None:
        """Refuse a version without labels or a readable, intact tokenizer; keep its tokenizer."""
        check_manifest(manifest)
        self._text.prepare(self.slot.repository, manifest)

    def warm_up_dims(self) -> Mapping[str, int]:
        return {"seq": 16}

    def extra_output_topics(self) -> Sequence[str]:
        return (self.settings.escalations_topic,)

    def key_of(self, event: SupportMessage) -> str | None:
        return event.customer_id

    def text_pipeline(self, manifest: ModelManifest) -> TextPipeline:
        """The tokenizer and labels of the version ``manifest`` describes."""
        return self._text.for_manifest(self.slot.repository, manifest)

    def agreement_view(self, output: dict[str, Any]) -> AgreementView | None:
        """The top intent's probability and the intent itself (what routes the message)."""
        return AgreementView(scores={"": output["probability"]}, decision=output["intent"])

    def predict(self, batch: Sequence[Event[SupportMessage]]) -> Sequence[ScoreResult]:
        self._last = None
        if not batch:
            return []
        loaded = self.slot.current  # once per batch: graph, manifest and tokenizer stay together
        text = self.text_pipeline(loaded.manifest)
        messages = [e.value for e in batch]
        probs = self._classify(loaded.model, text, loaded.model.provider, [m.text for m in messages])
        order, best = top_k(probs, TOP_K)
        labels = np.asarray(text.labels, dtype=object)
        queues = self.router.table(text.labels)[order[:, 0]].tolist()
        intents = labels[order[:, 0]].tolist()
        same = self._same_problem()
        repeats = self._repeats(batch, intents, same)
        threshold = self.settings.escalation_threshold
        low = (best[:, 0] < (text.threshold if threshold is None else threshold)).tolist()
        facts = Understood(
            intents=intents, probability=best[:, 0], queues=queues, repeats=repeats,
            top3=[[{"intent": i, "probability": min(max(p, 0.0), 1.0)} for i, p in zip(names, ps, strict=True)]
                  for names, ps in zip(labels[order].tolist(), best.astype(np.float64).tolist(), strict=True)],
            reasons=reasons_of(low, [n >= self._rule.count for n in repeats]),
        )  # fmt: skip
        self._last = facts
        return outputs_for(messages, facts, loaded.manifest.version, self.settings.escalations_topic,
                           self.settings.repeat_window_s)

    def _classify(self, runner: GraphRunner, text: TextPipeline, provider: str, texts: list[str]) -> np.ndarray:
        try:
            tokens = Tokens.encode(text.tokenizer, texts)
            if self.settings.length_buckets:
                groups = length_groups(tokens.lengths, CPU_COST if provider == CPU else GPU_COST,
                                       self.settings.max_rows_per_call)  # fmt: skip
            else:
                step, rows = self.settings.max_rows_per_call, np.arange(len(texts))
                groups = [rows[k : k + step] for k in range(0, len(rows), step)]
            probs = probabilities(runner, tokens, groups, text.pad_id, len(text.labels))
        except Exception as exc:
            raise ScoringError(f"support model failed on a batch of {len(texts)}: {exc}") from exc
        if not np.all(np.isfinite(probs)):
            raise ScoringError(f"support model returned non-finite probabilities for a batch of {len(texts)}")
        return probs

    def _same_problem(self) -> Callable[[str], str]:
        """What identifies a problem for the repeat rule: the intent's queue (the routing in force) or the intent."""
        if self.settings.repeat_key == "intent":
            return str
        queues, default = self.router.routing()
        return lambda intent: queues.get(intent, default)

    def _repeats(self, batch: Sequence[Event[SupportMessage]], intents: list[str],
                 key: Callable[[str], str]) -> list[int]:
        """Per message, how many messages about its problem its customer sent within the window (this one
        included), in offset order; the customers' new states are written once each, at the end."""
        touched: dict[tuple[int, str], list[Entry]] = {}
        counts = []
        for ev, intent in zip(batch, intents, strict=True):
            m = ev.value
            slot = (ev.partition, ev.key or m.customer_id)
            entries = touched[slot] if slot in touched else entries_of(self._state.get(*slot))
            entries = self._rule.remember(entries, m.ts_ms, intent, m.message_id)
            touched[slot] = entries
            counts.append(self._rule.within(entries, m.ts_ms, key(intent), key))
        for (partition, customer), entries in touched.items():
            self._state.put(partition, customer, {"r": entries})
        return counts

    def record_business_metrics(self, service: str, results: Sequence[ScoreResult], metrics: BusinessMetrics) -> None:
        """Messages per queue, escalations per reason, escalate/route decisions and top probabilities."""
        facts, self._last = self._last, None
        if facts is None:
            return
        if self._metrics is None or self._metrics.registry is not metrics.registry:
            self._metrics = SupportMetrics(metrics.registry)
        for queue, n in Counter(facts.queues).items():
            self._metrics.queue.labels(service, queue).inc(n)
        for reason, n in Counter(r for reasons in facts.reasons for r in reasons).items():
            self._metrics.escalations.labels(service, reason).inc(n)
        escalated = sum(1 for r in facts.reasons if r)
        metrics.decisions.labels(service, "escalate").inc(escalated)
        metrics.decisions.labels(service, "route").inc(len(facts.reasons) - escalated)
        observe_many(metrics.score.labels(service), facts.probability.astype(np.float64).tolist())
