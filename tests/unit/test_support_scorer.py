"""The support scorer on batches, without a broker: intents, queues, escalations, state, hot swap.

Models are published into a temporary repository: a keyword model whose answers a test can
predict (the first word names the intent) and a tiny random BERT with a WordPiece tokenizer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from services import support
from services.support.scorer import SupportScorer
from services.support.settings import SupportSettings
from shared.models.repository import ModelRepository
from shared.runtime.config import StaticConfig
from shared.runtime.metrics import BusinessMetrics
from shared.runtime.scorer import Event, LoadContext, Scored, ScoreResult
from shared.runtime.state import StateStore
from shared.schemas.support import SupportEscalation, SupportIntent, SupportMessage
from tests.support.tiny_support_model import WORDS, publish_keyword_support, publish_tiny_support

T0 = 1_760_000_000_000
HOUR_MS = 3_600_000


def message(i: int, text: str, customer: str = "c1", ts_ms: int | None = None) -> SupportMessage:
    return SupportMessage(message_id=f"m{i}", customer_id=customer, channel="chat", language="en", text=text,
                          ts_ms=T0 + i * 1000 if ts_ms is None else ts_ms)  # fmt: skip


def events(messages: list[SupportMessage], partition: int = 0) -> list[Event[SupportMessage]]:
    return [Event(m, m.customer_id, "support.messages", partition, i, m.ts_ms) for i, m in enumerate(messages)]


def make(models: Path, state: StateStore | None = None, config: StaticConfig | None = None,
         **overrides: Any) -> SupportScorer:
    settings = SupportSettings(models_dir=models, execution_providers=["cpu"], model_poll_interval_s=0.01,
                               **overrides)  # fmt: skip
    scorer = SupportScorer(settings)
    scorer.load(LoadContext(settings=settings, state=state or StateStore(), config=config or StaticConfig()))
    return scorer


def score(scorer: SupportScorer, batch: list[Event[SupportMessage]],
          state: StateStore | None = None) -> list[ScoreResult]:
    """One batch as the runtime runs it: state writes staged, committed when ``score`` returns."""
    if state is not None:
        state.begin()
    results = list(scorer.score(batch))
    if state is not None:
        state.commit()
    return results


def intents_of(results: list[ScoreResult]) -> list[SupportIntent]:
    assert all(isinstance(r, Scored) for r in results)
    return [SupportIntent.model_validate_json(r.outputs[0].value) for r in results  # type: ignore[union-attr,arg-type]
            if isinstance(r, Scored)]  # fmt: skip


def escalations_of(results: list[ScoreResult], topic: str = "support.escalations") -> list[SupportEscalation]:
    return [SupportEscalation.model_validate_json(o.value) for r in results if isinstance(r, Scored)  # type: ignore[arg-type]
            for o in r.outputs if o.topic == topic]  # fmt: skip


@pytest.fixture
def keyword_models(tmp_path: Path) -> Path:
    publish_keyword_support(ModelRepository(tmp_path))
    return tmp_path


def test_service_module_exports_the_two_names() -> None:
    assert support.SETTINGS_CLASS is SupportSettings
    assert type(support.create_scorer(SupportSettings())).__name__ == "SupportScorer"


def test_each_message_gets_its_intent_top3_and_queue(keyword_models: Path) -> None:
    texts = ["card has not arrived", "payment was declined", "lost my card", "transfer is slow",
             "top up failed", "exchange rate", "close my account"]  # fmt: skip
    results = score(make(keyword_models), events([message(i, t, f"c{i}") for i, t in enumerate(texts)]))
    out = intents_of(results)
    assert [o.intent for o in out] == ["card_arrival", "declined_card_payment", "lost_or_stolen_card",
                                       "transfer_timing", "top_up_failed", "exchange_rate", "terminate_account"]
    assert [o.queue for o in out] == ["cards", "payments", "security", "transfers", "top_up", "exchange", "account"]
    for o in out:
        assert o.probability == pytest.approx(0.9, abs=1e-5)
        assert len(o.top3) == 3 and o.top3[0].intent == o.intent
        assert o.top3[0].probability >= o.top3[1].probability >= o.top3[2].probability
        assert not o.escalate and o.escalation_reasons == () and o.model_version == "v0001"
    assert escalations_of(results) == []


def test_unsure_messages_are_escalated_as_low_confidence(keyword_models: Path) -> None:
    results = score(make(keyword_models), events([message(0, "why is it so slow"), message(1, "card", "c2")]))
    unsure, sure = intents_of(results)
    assert unsure.escalate and unsure.escalation_reasons == ("low_confidence",)
    assert unsure.probability == pytest.approx(1 / 7, abs=1e-5)
    assert not sure.escalate
    (escalation,) = escalations_of(results)
    assert (escalation.message_id, escalation.reasons, escalation.queue) == ("m0", ("low_confidence",), unsure.queue)
    assert escalation.channel == "chat" and escalation.repeat_count == 1


def test_the_threshold_in_settings_overrides_the_versions(keyword_models: Path) -> None:
    batch = events([message(0, "card has not arrived")])
    assert not intents_of(score(make(keyword_models), batch))[0].escalate  # the manifest's 0.5 < 0.9
    assert intents_of(score(make(keyword_models, escalation_threshold=0.95), batch))[0].escalate


def test_the_third_message_about_one_problem_within_the_window_is_escalated(keyword_models: Path) -> None:
    state = StateStore()
    scorer = make(keyword_models, state)
    first = score(scorer, events([message(0, "card has not arrived"), message(1, "payment declined")]), state)
    assert not any(o.escalate for o in intents_of(first))
    # the same queue (cards) through another phrasing, then a later message an hour on
    second = score(scorer, events([message(2, "card please", ts_ms=T0 + HOUR_MS)]), state)
    assert not intents_of(second)[0].escalate, "two messages are not yet a repeat"
    third = score(scorer, events([message(3, "card still not here", ts_ms=T0 + 2 * HOUR_MS)]), state)
    (out,) = intents_of(third)
    assert out.escalate and out.escalation_reasons == ("repeated_problem",)
    (escalation,) = escalations_of(third)
    assert escalation.repeat_count == 3 and escalation.repeat_window_s == 48 * 3600
    # another customer's card messages do not count for c1, nor c1's outside the window
    other = score(scorer, events([message(4, "card", "c2"), message(5, "card", ts_ms=T0 + 60 * HOUR_MS)]), state)
    assert [o.escalate for o in intents_of(other)] == [False, False]


def test_repeats_in_one_batch_see_each_other_and_a_replayed_batch_counts_once(keyword_models: Path) -> None:
    state = StateStore()
    scorer = make(keyword_models, state)
    batch = events([message(i, "transfer not received") for i in range(3)])
    assert [o.escalate for o in intents_of(score(scorer, batch, state))] == [False, False, True]
    again = intents_of(score(scorer, batch, state))  # at-least-once: the same messages after a crash
    assert [o.escalate for o in again] == [False, False, True]
    assert [e[2] for e in state.snapshot(0)["c1"]["r"]] == ["m0", "m1", "m2"]


def test_repeat_key_intent_needs_the_same_intent(keyword_models: Path) -> None:
    texts = ["card a", "lost b", "card c"]
    by_queue = make(keyword_models, config=StaticConfig({"queues": {"map": {"lost_or_stolen_card": "cards"}}}))
    assert intents_of(score(by_queue, events([message(i, t) for i, t in enumerate(texts)])))[2].escalate
    by_intent = make(keyword_models, repeat_key="intent",
                     config=StaticConfig({"queues": {"map": {"lost_or_stolen_card": "cards"}}}))
    assert not intents_of(score(by_intent, events([message(i, t) for i, t in enumerate(texts)])))[2].escalate


def test_state_is_bounded_per_customer_and_survives_a_restore(keyword_models: Path) -> None:
    state = StateStore()
    scorer = make(keyword_models, state, max_kept_per_customer=4)
    score(scorer, events([message(i, "exchange rate", ts_ms=T0 + i * HOUR_MS) for i in range(10)]), state)
    kept = state.snapshot(0)["c1"]["r"]
    assert [e[2] for e in kept] == ["m6", "m7", "m8", "m9"]
    restored = StateStore()  # what a restart rebuilds from the changelog
    restored.apply_changelog(0, [(c.key.encode(), c.value) for c in state.drain_changes()])
    again = make(keyword_models, restored)
    out = intents_of(score(again, events([message(10, "exchange fee", ts_ms=T0 + 10 * HOUR_MS)]), restored))
    assert out[0].escalate and out[0].escalation_reasons == ("repeated_problem",)


def test_a_failing_model_raises_and_leaves_the_state_untouched(keyword_models: Path) -> None:
    state = StateStore()
    scorer = make(keyword_models, state)

    class Broken:
        provider = "CPUExecutionProvider"

        def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            raise RuntimeError("device lost")

    loaded = scorer.slot.current
    object.__setattr__(loaded, "model", Broken())
    state.begin()
    with pytest.raises(Exception, match="support model failed on a batch of 1"):
        scorer.score(events([message(0, "card")]))
    state.rollback()
    assert state.snapshot(0) == {}


def test_the_queue_map_is_overridden_on_the_config_topic_and_a_bad_record_is_ignored(keyword_models: Path) -> None:
    config = StaticConfig()
    scorer = make(keyword_models, config=config, queues={"card_arrival": "delivery"}, default_queue="other")
    batch = events([message(0, "card"), message(1, "payment", "c2")])
    assert [o.queue for o in intents_of(score(scorer, batch))] == ["delivery", "other"]
    config.values["queues"] = {"map": {"declined_card_payment": "payments-urgent"}, "default": "triage"}
    assert [o.queue for o in intents_of(score(scorer, batch))] == ["delivery", "payments-urgent"]
    config.values["queues"] = {"map": {"card_arrival": ""}}  # invalid: the routing in force stays
    assert [o.queue for o in intents_of(score(scorer, batch))] == ["delivery", "payments-urgent"]
    del config.values["queues"]  # a tombstone: back to settings
    assert [o.queue for o in intents_of(score(scorer, batch))] == ["delivery", "other"]


def test_business_metrics_count_queues_escalations_and_decisions(keyword_models: Path) -> None:
    scorer = make(keyword_models)
    results = score(scorer, events([message(0, "card"), message(1, "card", "c2"), message(2, "so slow", "c3")]))
    registry = CollectorRegistry()
    scorer.record_business_metrics("support", results, BusinessMetrics(registry))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"service": "support", **labels})

    assert value("shopstream_business_support_routed_total", queue="cards") == 3  # the unsure one too
    assert value("shopstream_business_support_escalations_total", reason="low_confidence") == 1
    assert value("shopstream_business_decisions_total", decision="escalate") == 1
    assert value("shopstream_business_decisions_total", decision="route") == 2
    assert value("shopstream_business_score_count") == 3


def test_a_hot_swap_serves_the_new_graph_with_its_own_tokenizer(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    publish_tiny_support(repo, seed=1)
    scorer = make(tmp_path)
    batch = events([message(0, "card has not arrived yet")])
    assert intents_of(score(scorer, batch))[0].model_version == "v0001"
    # v0002 numbers its vocabulary the other way round: read with v0001's tokenizer, "card" would be
    # another token and the keyword graph would not recognise it
    publish_keyword_support(repo, words=tuple(reversed(WORDS)))
    time.sleep(0.05)  # the slot polls the repository every 10 ms here
    assert scorer.slot.maybe_swap(block=True)
    (out,) = intents_of(score(scorer, batch))
    assert (out.model_version, out.intent) == ("v0002", "card_arrival")
    assert out.probability == pytest.approx(0.9, abs=1e-5)


def test_a_version_with_a_corrupt_tokenizer_is_refused_and_the_old_one_keeps_serving(keyword_models: Path) -> None:
    repo = ModelRepository(keyword_models)
    scorer = make(keyword_models)
    manifest = publish_keyword_support(repo)
    path = repo.path("support", manifest.version) / "tokenizer.json"
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b'"card"', b'"cart"'))
    time.sleep(0.05)
    assert not scorer.slot.maybe_swap(block=True)
    assert scorer.slot.refused == {manifest.version: "checksum"}
    assert intents_of(score(scorer, events([message(0, "card")])))[0].model_version == "v0001"


def test_changelog_values_are_small_json(keyword_models: Path) -> None:
    state = StateStore()
    score(make(keyword_models, state), events([message(0, "card")]), state)
    (change,) = state.drain_changes()
    assert change.value is not None and orjson.loads(change.value) == {"r": [[T0, "card_arrival", "m0"]]}
