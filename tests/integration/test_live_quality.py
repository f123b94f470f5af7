"""Live quality on a real broker: a bad model version shipped mid-stream shows in the monitor.

The ad CTR service copies its scores to the feedback topic, the shop's clicks go there too, and
the monitor joins them. The service starts on the committed model; then a version whose scores
are inverted (a deliberately bad model: it ranks the least likely click first) is published and
hot-swapped in. Within the outcomes of 300 requests each (about 6,000 shown ads, some 250
clicks), the monitor's live AUC for the bad version is below both the baseline's and the good
version's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from services.ad_ctr.scorer import AdCtrScorer
from services.ad_ctr.settings import AdCtrSettings
from services.monitor.scorer import MonitorScorer
from services.monitor.settings import MonitorSettings
from services.recommendation.scorer import RecommendationScorer
from services.recommendation.settings import RecommendationSettings
from shared.models.manifest import ModelManifest, file_ref
from shared.models.repository import ModelRepository
from shared.settings import KafkaSettings, MetricsSettings, RuntimeSettings
from sim.clickstream import ClickstreamSim
from sim.registry import world_for
from tests.support.ad_traffic import requests_and_clicks
from tests.support.factories import GroupIdFactory, TopicFactory
from tools.supervisor import produce, service_in_thread, wait_until

pytestmark = pytest.mark.integration

MODELS = Path(__file__).resolve().parents[2] / "models"
REQUESTS_PER_VERSION = 300


def inverted_copy(source: Path, target: Path) -> None:
    """The ad model with its logit negated, so pCTR becomes 1 - pCTR: the same interface, the worst ranking."""
    model = onnx.load(str(source))
    graph = model.graph
    renamed = {"logit": "logit_good", "pctr": "pctr_good"}
    for node in graph.node:
        node.input[:] = [renamed.get(n, n) for n in node.input]
        node.output[:] = [renamed.get(n, n) for n in node.output]
    graph.initializer.append(numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"))
    graph.node.extend([helper.make_node("Neg", ["logit_good"], ["logit"]),
                       helper.make_node("Sub", ["one", "pctr_good"], ["pctr"])])
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def publish_bad_version(models: Path, tmp: Path) -> str:
    repository = ModelRepository(models)
    good = repository.get("ad_ctr", "v0001")
    path = tmp / "model.onnx"
    inverted_copy(models / "ad_ctr" / "v0001" / good.file, path)
    ref = file_ref(path)
    bad = ModelManifest.model_validate({
        **good.model_dump(), "version": "pending", "sha256": ref.sha256, "size_bytes": ref.size_bytes,
        "variants": {}, "checkpoint": None, "parity": None, "metrics": {}, "file": "model.onnx",
    })
    return repository.write_version(bad, {"model.onnx": path}).version


def test_a_bad_version_shows_lower_live_quality_within_300_requests(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    for name in ("ad_ctr", "ad_ctr_text"):
        shutil.copytree(MODELS / name / "v0001", models / name / "v0001")
    topic, feedback = topic_factory(partitions=2), topic_factory(partitions=2)
    common: dict[str, Any] = {
        "kafka": KafkaSettings(bootstrap_servers=kafka_bootstrap),
        "metrics": MetricsSettings(host="127.0.0.1", port=0),
        "runtime": RuntimeSettings(session_timeout_ms=6000, max_batch_size=128),
    }
    ads = AdCtrSettings.model_validate({
        **common, "input_topic": topic, "output_topic": f"{topic}.scores", "group_id": group_id_factory(),
        "models_dir": models, "execution_providers": ["cpu"], "intra_op_threads": 1, "max_candidates": 40,
        "feedback_topic": feedback, "model_poll_interval_s": 0.5,
    })
    watch = MonitorSettings.model_validate({
        **common, "input_topic": feedback, "output_topic": f"{feedback}.quality", "group_id": group_id_factory(),
        "refresh_interval_s": 0.0, "window": 20_000,
    })
    ad_scorer, monitor = AdCtrScorer(ads), MonitorScorer(watch)
    with service_in_thread(ads, ad_scorer), service_in_thread(watch, monitor) as monitor_app:
        def joined(version: str) -> float:
            return monitor_app.metrics.registry.get_sample_value(
                "shopstream_live_outcomes_total", {"service": "ad_ctr", "model_version": version}) or 0.0

        events, clicks = requests_and_clicks(0, REQUESTS_PER_VERSION)
        produce(kafka_bootstrap, feedback, clicks[: len(clicks) // 2])  # some outcomes before their prediction
        produce(kafka_bootstrap, topic, events)
        produce(kafka_bootstrap, feedback, clicks[len(clicks) // 2 :])
        assert wait_until(lambda: joined("v0001") >= REQUESTS_PER_VERSION, 90), f"v0001 joined {joined('v0001')}"

        bad = publish_bad_version(models, tmp_path)
        assert wait_until(lambda: ad_scorer.model_info.version == bad, 30), "the bad version was not swapped in"
        events, clicks = requests_and_clicks(REQUESTS_PER_VERSION, REQUESTS_PER_VERSION)
        produce(kafka_bootstrap, topic, events)
        produce(kafka_bootstrap, feedback, clicks)
        assert wait_until(lambda: joined(bad) >= REQUESTS_PER_VERSION, 90), f"{bad} joined {joined(bad)}"

        def gauge(name: str, version: str, metric: str) -> float:
            value = monitor_app.metrics.registry.get_sample_value(
                name, {"service": "ad_ctr", "model_version": version, "metric": metric})
            assert value is not None, (name, version, metric)
            return value

        good_auc = gauge("shopstream_live_quality", "v0001", "auc")
        bad_auc = gauge("shopstream_live_quality", bad, "auc")
        base_auc = gauge("shopstream_live_quality_baseline", bad, "auc")
        assert good_auc > 0.6 > 0.4 > bad_auc, (good_auc, bad_auc)
        assert bad_auc < base_auc - 0.1
        assert gauge("shopstream_live_quality", bad, "log_loss") > gauge("shopstream_live_quality_baseline", bad,
                                                                          "log_loss")
        assert joined("v0001") == joined(bad) == REQUESTS_PER_VERSION  # each pair once, none lost


RECO_SKIP, RECO_EVENTS = 400_000, 40_000
"""Clicks taken well past the default model's training data (the first 300,000 of the stream)."""


def test_the_default_recommender_beats_popularity_on_the_live_stream(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory
) -> None:
    """Measured through the broker, as the demo measures it: the warm lists' next-click hit rate
    is at least 1.5 times the running popularity list's, and the last 1,000 warm lists hold at
    least a fifth of the catalogue."""
    topic, feedback = topic_factory(partitions=2), topic_factory(partitions=2)
    common: dict[str, Any] = {
        "kafka": KafkaSettings(bootstrap_servers=kafka_bootstrap),
        "metrics": MetricsSettings(host="127.0.0.1", port=0),
        "runtime": RuntimeSettings(session_timeout_ms=6000),
    }
    reco = RecommendationSettings.model_validate({
        **common, "input_topic": topic, "output_topic": f"{topic}.reco", "group_id": group_id_factory(),
        "changelog_topic": f"{topic}.changelog", "models_dir": MODELS, "execution_providers": ["cpu"],
        "feedback_topic": feedback,
    })
    watch = MonitorSettings.model_validate({
        **common, "input_topic": feedback, "output_topic": f"{feedback}.quality", "group_id": group_id_factory(),
        "refresh_interval_s": 0.0, "window": 100_000,
    })
    clicks = [e for e, _ in ClickstreamSim(world_for(7)).iter_dicts(RECO_SKIP + RECO_EVENTS)][RECO_SKIP:]
    produce(kafka_bootstrap, topic, [(str(e["user_id"]).encode(), json.dumps(e).encode()) for e in clicks])
    with service_in_thread(reco, RecommendationScorer(reco)), service_in_thread(watch, MonitorScorer(watch)) as app:
        registry = app.metrics.registry

        def read() -> float:
            return registry.get_sample_value("shopstream_events_scored_total",
                                             {"service": "monitor", "topic": feedback}) or 0.0

        assert wait_until(lambda: read() >= RECO_EVENTS, 180), f"the monitor read {read()} of {RECO_EVENTS}"
        version = ModelRepository(MODELS).resolve("recommendation")

        def gauge(name: str, metric: str) -> float:
            value = registry.get_sample_value(name, {"service": "recommendation", "model_version": version,
                                                     "metric": metric})
            assert value is not None, (name, metric)
            return value

        hit = gauge("shopstream_live_quality", "hit_at_10")
        popular = gauge("shopstream_live_quality_baseline", "hit_at_10")
        coverage = gauge("shopstream_live_quality", "coverage")
        judged = registry.get_sample_value("shopstream_live_outcomes_total",
                                           {"service": "recommendation", "model_version": version})
        print(f"recommendation {version}: hit@10 {hit:.4f}, popularity {popular:.4f}, ratio {hit / popular:.2f}, "
              f"coverage {coverage:.3f}, lists judged {judged}")
        assert hit >= 1.5 * popular
        assert coverage >= 0.2
