"""The recommendation scorer with the committed default model, in-memory state (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.recommendation import SETTINGS_CLASS, create_scorer
from services.recommendation.scorer import RecommendationScorer
from services.recommendation.settings import RecommendationSettings
from shared.runtime.config import StaticConfig
from shared.runtime.scorer import Event, LoadContext, Rejected, Scored
from shared.runtime.state import StateStore
from shared.schemas.clickstream import ClickEvent, RecoScores
from sim.catalogue import CATEGORIES, CATEGORY_NAMES
from sim.clickstream import ClickstreamSim
from sim.registry import world_for

MODELS = Path(__file__).resolve().parents[2] / "models"
TS = 1_704_067_200_000
REPEAT = {c.name for c in CATEGORIES if c.repeat_purchase}


def _click(user: str, item: int, kind: str = "view", category: str | None = None, i: int = 0) -> ClickEvent:
    return ClickEvent(user_id=user, session_id="s1", item_id=item, event_type=kind,  # type: ignore[arg-type]
                      category=category, ts_ms=TS + i)


def _events(clicks: list[ClickEvent]) -> list[Event[ClickEvent]]:
    return [Event(c, c.user_id, "clickstream.events", 0, i, c.ts_ms) for i, c in enumerate(clicks)]


def _scorer(state: StateStore | None = None, config: StaticConfig | None = None,
            **settings: object) -> RecommendationScorer:
    s = RecommendationSettings(models_dir=MODELS, **settings)  # type: ignore[arg-type]
    scorer = RecommendationScorer(s)
    scorer.load(LoadContext(settings=s, state=state if state is not None else StateStore(),
                            config=config or StaticConfig()))
    return scorer


def _reco(result: object) -> RecoScores:
    assert isinstance(result, Scored)
    value = result.outputs[0].value
    assert isinstance(value, bytes)  # encoded in bulk from columns
    return RecoScores.model_validate_json(value)


def _sim_clicks(n: int) -> list[ClickEvent]:
    return [ClickEvent.model_validate(e) for e, _ in ClickstreamSim(world_for(7)).iter_dicts(n)]


def test_entry_points_build_a_recommendation_scorer():
    assert SETTINGS_CLASS is RecommendationSettings
    s = RecommendationSettings(models_dir=MODELS)
    assert isinstance(create_scorer(s), RecommendationScorer)
    assert (s.input_topic, s.output_topic) == ("clickstream.events", "reco.scores")


def test_sim_stream_gets_k_items_never_an_already_purchased_one():
    scorer = _scorer()
    clicks = _sim_clicks(3000)
    results = scorer.score(_events(clicks))
    catalogue = world_for(7).catalogue
    bought: dict[str, set[int]] = {}
    for click, result in zip(clicks, results, strict=True):
        if click.event_type == "purchase":
            bought.setdefault(click.user_id, set()).add(click.item_id)
        reco = _reco(result)
        items = [s.item_id for s in reco.items]
        assert len(items) == 10 == len(set(items))
        assert reco.source.item_id == click.item_id and reco.model_version.startswith("v")
        repeatable = {i for i in bought.get(click.user_id, ()) if catalogue.category_name(i) in REPEAT}
        assert not (set(items) & (bought.get(click.user_id, set()) - repeatable)), click
    assert scorer.model_info.name == "recommendation"


def test_first_click_is_cold_start_with_popular_items_of_the_session_category():
    scorer = _scorer()
    catalogue = world_for(7).catalogue
    item = int(catalogue.by_category[2][0])
    reco = _reco(scorer.score(_events([_click("new-user", item, category="makeup")]))[0])
    assert reco.cold_start
    assert {catalogue.category_name(s.item_id) for s in reco.items} == {"makeup"}
    scores = [s.score for s in reco.items]
    assert scores == sorted(scores, reverse=True)


def test_events_of_one_user_in_a_batch_see_each_other_and_state_survives_a_restart():
    state = StateStore()
    scorer = _scorer(state)
    first = scorer.score(_events([_click("u1", 10, i=0), _click("u1", 11, i=1)]))
    assert _reco(first[0]).cold_start and not _reco(first[1]).cold_start
    assert [p[0] for p in state.get(0, "u1")["items"]] == [10, 11]  # type: ignore[index]
    restarted = _scorer(state)  # a new process restored from the changelog
    after = _reco(restarted.score(_events([_click("u1", 12, i=2)]))[0])
    continued = _reco(scorer.score(_events([_click("u1", 12, i=2)]))[0])
    assert not after.cold_start and [s.item_id for s in after.items] == [s.item_id for s in continued.items]


def test_unknown_item_is_rejected_or_ignored_as_configured():
    bad = _click("u2", 10_000_000)
    rejected = _scorer().score(_events([bad]))[0]
    assert isinstance(rejected, Rejected) and rejected.reason == "unknown_item"
    state = StateStore()
    ignored = _scorer(state, unknown_item="ignore").score(_events([_click("u2", 5), bad, _click("u2", 6)]))
    assert all(isinstance(r, Scored) for r in ignored)
    assert [p[0] for p in state.get(0, "u2")["items"]] == [5, 10_000_000, 6]  # type: ignore[index]


def test_business_filters_from_settings_and_config_topic_are_applied():
    clicks = [_click("u3", i, i=i) for i in (100, 101, 102)]
    plain = [s.item_id for s in _reco(_scorer().score(_events(clicks))[-1]).items]
    blocked = CATEGORY_NAMES[int(world_for(7).catalogue.category[plain[0]])]
    via_settings = _reco(_scorer(out_of_stock=plain[:3]).score(_events(clicks))[-1])
    assert not {s.item_id for s in via_settings.items} & set(plain[:3])
    config = StaticConfig({"filters": {"blocked_categories": [blocked]}})
    via_topic = _reco(_scorer(config=config).score(_events(clicks))[-1])
    catalogue = world_for(7).catalogue
    assert blocked not in {catalogue.category_name(s.item_id) for s in via_topic.items}


def test_batched_scoring_equals_one_event_at_a_time():
    clicks = _sim_clicks(400)
    batched = _scorer().score(_events(clicks))
    single_scorer = _scorer()
    singles = [single_scorer.score(_events([c]))[0] for c in clicks]
    for a, b in zip(batched, singles, strict=True):
        ra, rb = _reco(a), _reco(b)
        assert [s.item_id for s in ra.items] == [s.item_id for s in rb.items]
        assert all(abs(x.score - y.score) < 1e-3 for x, y in zip(ra.items, rb.items, strict=True))


def test_coverage_counts_the_lists_of_the_last_score_once():
    from shared.runtime.metrics import RuntimeMetrics

    scorer, metrics = _scorer(), RuntimeMetrics("recommendation")
    results = scorer.score(_events(_sim_clicks(50)))
    scorer.record_business_metrics("recommendation", results, metrics.business)
    scorer.record_business_metrics("recommendation", results, metrics.business)  # nothing new was scored
    listed = {s.item_id for r in results for s in _reco(r).items}
    coverage = metrics.registry.get_sample_value("shopstream_business_coverage_ratio", {"service": "recommendation"})
    assert len(scorer._coverage) == 50
    assert coverage == pytest.approx(len(listed) / 5000)


@pytest.mark.parametrize("variant", ["fp16", "int8"])
def test_the_top_k_head_serves_the_lower_precision_variants_too(variant: str) -> None:
    clicks = [_click("u5", i, i=i) for i in (100, 101, 102)]
    reco = _reco(_scorer(model_variant=variant).score(_events(clicks))[-1])
    assert len(reco.items) == 10 and not reco.cold_start
    scores = [s.score for s in reco.items]
    assert scores == sorted(scores, reverse=True)
