"""Rolling a model out on a real broker: canary, shadow, the promotion gate, rollback.

The ad CTR service serves through two candidates of opposite worth: the committed v0001 and a
v0002 trained the same way on shuffled clicks (``shopstream export ad_ctr --set
labels=shuffled``, kept in ``tests/fixtures/shuffled_ads``), so its live AUC is near 0.5. The
monitor joins every scored request with its clicks and publishes each version's measures; the
operator's commands (``shopstream models ...``) run in-process, as the CLI.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from services.ad_ctr.scorer import AdCtrScorer
from services.ad_ctr.settings import AdCtrSettings
from services.monitor.scorer import MonitorScorer
from services.monitor.settings import MonitorSettings
from shared.runtime.rollout.split import in_canary
from shared.schemas import headers as h
from shared.schemas.rollout import ModelEvent
from shared.settings import KafkaSettings, MetricsSettings, RuntimeSettings
from tests.support.ad_traffic import requests_and_clicks
from tests.support.factories import GroupIdFactory, TopicFactory
from tools.cli.main import main
from tools.rollout.decisions import read_topic
from tools.supervisor import Collected, collect, produce, service_in_thread, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 350
"""Ad requests per phase: about 175 per version under a half canary, some 3,500 shown ads each."""


def models_with_a_shuffled_candidate(tmp: Path) -> Path:
    """v0001 (the committed model) and v0002 (same recipe, shuffled clicks) of ad_ctr and its text encoder."""
    models = tmp / "models"
    for name in ("ad_ctr", "ad_ctr_text"):
        shutil.copytree(ROOT / "models" / name / "v0001", models / name / "v0001")
        shutil.copytree(ROOT / "tests" / "fixtures" / "shuffled_ads" / f"{name}_v0002", models / name / "v0002")
    return models


class Deployment:
    """Topics and settings of one ad CTR deployment with its monitor; CLI arguments to match."""

    def __init__(self, bootstrap: str, topics: TopicFactory, groups: GroupIdFactory, tmp: Path,
                 delivery: str = "at_least_once") -> None:
        self.bootstrap = bootstrap
        self.models = models_with_a_shuffled_candidate(tmp)
        self.input, self.feedback = topics(partitions=2), topics(partitions=2)
        self.output = f"{self.input}.scores"
        compacted = {"cleanup.policy": "compact"}
        self.config, self.events, self.quality = (topics(partitions=1, config=compacted) for _ in range(3))
        common: dict[str, Any] = {
            "kafka": KafkaSettings(bootstrap_servers=bootstrap),
            "metrics": MetricsSettings(host="127.0.0.1", port=0),
        }
        self.ads = AdCtrSettings.model_validate({
            **common, "input_topic": self.input, "output_topic": self.output, "group_id": groups(),
            "models_dir": self.models, "execution_providers": ["cpu"], "intra_op_threads": 1, "max_candidates": 40,
            "feedback_topic": self.feedback, "config_topic": self.config, "model_events_topic": self.events,
            "model_poll_interval_s": 3600, "runtime": RuntimeSettings(session_timeout_ms=6000, max_batch_size=128,
                                                                       delivery=delivery),
        })
        self.watch = MonitorSettings.model_validate({
            **common, "input_topic": self.feedback, "output_topic": f"{self.feedback}.quality",
            "group_id": groups(), "refresh_interval_s": 0.0, "window": 20_000, "quality_topic": self.quality,
            "snapshot_interval_s": 0.0, "runtime": RuntimeSettings(session_timeout_ms=6000),
        })

    def models_cli(self, *args: str) -> int:
        return main(["models", *args[:2], *args[2:], "-b", self.bootstrap, "--models-dir", str(self.models),
                     "--config-topic", self.config, "--model-events-topic", self.events,
                     "--quality-topic", self.quality, "--output-topic", self.output, "--who", "integration-test"])

    def traffic(self, start: int, count: int) -> list[tuple[bytes, bytes]]:
        events, clicks = requests_and_clicks(start, count)
        produce(self.bootstrap, self.input, events)
        produce(self.bootstrap, self.feedback, clicks)
        return events

    def joined(self, version: str) -> int:
        raw = read_topic(self.ads.kafka, self.quality).get(f"ad_ctr/{version}")
        return int(raw["outcomes"]) if raw else 0  # type: ignore[call-overload]

    def decision(self) -> ModelEvent:
        return ModelEvent.model_validate(read_topic(self.ads.kafka, self.events)["ad_ctr"])

    def scores(self, expected: int) -> list[Collected]:
        """The committed scores once ``expected`` are there, read again a little later: a duplicate
        would come after the count was reached."""
        collect(self.bootstrap, [self.output], lambda r: len(r) >= expected, timeout_s=90)
        time.sleep(1.0)
        return collect(self.bootstrap, [self.output], lambda r: len(r) > expected, timeout_s=3)


def served_by(record: Collected) -> tuple[str, str]:
    value = json.loads(record.value or b"{}")
    return value["request_id"], value["model_version"]


def exactly_once(records: list[Collected], expected: int) -> None:
    sources = Counter((r.headers[h.SOURCE_PARTITION], r.headers[h.SOURCE_OFFSET]) for r in records)
    assert len(sources) == expected, f"{expected - len(sources)} events lost"
    assert max(sources.values()) == 1, f"scored twice: {[s for s, n in sources.items() if n > 1][:5]}"
    for r in records:  # every output's lineage header names the version its body names
        assert r.headers[h.MODEL_VERSION].decode() == served_by(r)[1]


def test_a_canary_is_promoted_on_evidence_a_worse_one_refused_and_a_rollback_restores(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory, tmp_path: Path
) -> None:
    deploy = Deployment(kafka_bootstrap, topic_factory, group_id_factory, tmp_path)
    first, second = AdCtrScorer(deploy.ads), AdCtrScorer(deploy.ads)
    instances = (first, second)
    with service_in_thread(deploy.ads, first) as app_a, service_in_thread(deploy.ads, second) as app_b, \
            service_in_thread(deploy.watch, MonitorScorer(deploy.watch)):
        apps = (app_a, app_b)
        assert wait_until(lambda: all(a.assignment.partitions for a in apps), 60), "both instances get a partition"
        assert {s.model_info.version for s in instances} == {"v0002"}, "unpinned: the newest version serves"

        # 1. v0001 as a half canary beside the (worthless) live v0002, then promoted on its evidence
        assert deploy.models_cli("rollout", "ad_ctr", "--canary", "v0001", "--share", "0.5") == 0
        assert wait_until(lambda: all(s.rollout and s.rollout.active for s in instances), 30)
        phase1 = deploy.traffic(0, CHUNK)
        assert wait_until(lambda: deploy.joined("v0001") + deploy.joined("v0002") >= CHUNK, 90)
        assert deploy.models_cli("promote", "ad_ctr", "v0001", "--min-outcomes", "100") == 0
        promoted = deploy.decision()
        assert (promoted.decision, promoted.live_version, promoted.replaced, promoted.forced) == \
            ("promoted", "v0001", ("v0002",), False)
        assert promoted.evidence is not None and promoted.evidence.metric == "auc"
        assert promoted.evidence.candidate and promoted.evidence.live
        good, bad = promoted.evidence.candidate.measures["auc"], promoted.evidence.live.measures["auc"]
        print(f"promoted: {promoted.evidence.reason}")
        assert good > 0.6 and bad < 0.55, (good, bad)
        assert wait_until(lambda: all(s.model_info.version == "v0001" for s in instances), 30), \
            "every instance follows the promotion"
        assert not any(s.rollout and s.rollout.active for s in instances), "the promotion ended the canary"

        # 2. the shuffled-label model as a canary again: refused, v0001 stays
        assert deploy.models_cli("rollout", "ad_ctr", "--canary", "v0002", "--share", "0.5") == 0
        assert wait_until(lambda: all(s.rollout and s.rollout.active for s in instances), 30)
        phase2 = deploy.traffic(CHUNK, CHUNK)
        assert wait_until(lambda: deploy.joined("v0001") + deploy.joined("v0002") >= 2 * CHUNK, 90)
        assert deploy.models_cli("promote", "ad_ctr", "v0002", "--min-outcomes", "100") == 3
        refused = deploy.decision()
        assert (refused.decision, refused.version, refused.live_version, refused.sequence) == \
            ("refused", "v0002", "v0001", 2)
        assert refused.evidence and "worse than live" in refused.evidence.reason
        print(f"refused: {refused.evidence.reason}")

        # 3. a rollback restores the version the promotion replaced, on every instance
        assert deploy.models_cli("rollback", "ad_ctr") == 0
        assert (deploy.decision().decision, deploy.decision().live_version) == ("rolled_back", "v0002")
        assert wait_until(lambda: all(s.model_info.version == "v0002" for s in instances), 30)
        for app in apps:  # each instance applied all three decisions, and says so
            sample = app.metrics.registry.get_sample_value
            assert sample("shopstream_model_decision_sequence", {"service": "ad_ctr"}) == 3
            assert sample("shopstream_model_decisions_total",
                          {"service": "ad_ctr", "decision": "refused", "forced": "false"}) == 1
        phase3 = deploy.traffic(2 * CHUNK, CHUNK // 5)
        records = deploy.scores(2 * CHUNK + CHUNK // 5)

    exactly_once(records, 2 * CHUNK + CHUNK // 5)
    version = dict(served_by(r) for r in records)
    for key, _ in phase1:
        assert version[key.decode()] == ("v0001" if in_canary(key.decode(), 0.5) else "v0002")
    for key, _ in phase2:
        assert version[key.decode()] == ("v0002" if in_canary(key.decode(), 0.5) else "v0001")
    assert {version[k.decode()] for k, _ in phase3} == {"v0002"}


def test_a_shadow_and_switches_under_load_lose_nothing_and_duplicate_nothing_exactly_once(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory, tmp_path: Path
) -> None:
    deploy = Deployment(kafka_bootstrap, topic_factory, group_id_factory, tmp_path, delivery="exactly_once")
    deploy.ads = deploy.ads.model_copy(update={"model_version": "v0001", "instance_id": "shadow-test"})
    scorer = AdCtrScorer(deploy.ads)
    with service_in_thread(deploy.ads, scorer) as app:
        assert deploy.models_cli("rollout", "ad_ctr", "--shadow", "v0002") == 0
        assert wait_until(lambda: scorer.rollout is not None and scorer.rollout.active, 30)
        shadowed = deploy.traffic(0, 300)
        shadow = collect(kafka_bootstrap, [f"{deploy.output}.shadow"], lambda r: len(r) >= 300, timeout_s=60)
        agreement = {m: app.metrics.registry.get_sample_value(
            "shopstream_shadow_agreement", {"service": "ad_ctr", "candidate": "v0002", "metric": m})
            for m in ("score_correlation", "decision_flip_rate", "top_k_overlap")}

        plans = (("--canary", "v0002", "--share", "0.3"), ("--shadow", "v0002"), ("--off",),
                 ("--canary", "v0002", "--share", "0.7"), ("--off",))
        def switch() -> None:  # the plan changes while events stream in
            for plan in plans:
                assert deploy.models_cli("rollout", "ad_ctr", *plan) == 0
                time.sleep(0.7)

        switching = threading.Thread(target=switch)
        switching.start()
        deploy.traffic(300, 800)
        switching.join(60)
        records = deploy.scores(1100)

    exactly_once(records, 1100)
    assert {served_by(r)[1] for r in records if served_by(r)[0] in {k.decode() for k, _ in shadowed}} == {"v0001"}
    assert len(shadow) == 300 and {r.headers[h.MODEL_VERSION] for r in shadow} == {b"v0002"}
    assert {r.headers[h.SOURCE_TOPIC] for r in shadow} == {deploy.input.encode()}
    print(f"shadow of the shuffled-label v0002 beside v0001: {agreement}")
    assert agreement["score_correlation"] is not None and agreement["score_correlation"] < 0.9
    assert agreement["top_k_overlap"] is not None and agreement["top_k_overlap"] < 1.0
    assert agreement["decision_flip_rate"] is not None and agreement["decision_flip_rate"] > 0.0
