"""The fraud service against a real broker: scores, alerts for injected attacks, DLQ, restart.

Uses the committed default model (``models/fraud``), so it runs on a fresh clone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from services.fraud.scorer import FraudScorer
from services.fraud.settings import FraudSettings
from shared.runtime.scorer import LoadContext
from shared.runtime.state import StateStore
from shared.schemas import headers as h
from shared.schemas.payments import FraudScore, Transaction
from shared.settings import KafkaSettings, MetricsSettings, RuntimeSettings
from sim.payments import FraudMix
from sim.registry import make_stream
from tests.support.factories import GroupIdFactory, TopicFactory
from tests.support.fraud import events, scores_of
from tools.supervisor import Collected, ServiceProcess, collect, produce, service_in_thread

pytestmark = pytest.mark.integration

MODELS = Path(__file__).resolve().parents[2] / "models"
ATTACK_HEAVY = FraudMix(card_testing=80.0, account_takeover=80.0, velocity=80.0)


def fraud_settings(bootstrap: str, topic: str, group: str) -> FraudSettings:
    return FraudSettings(
        input_topic=topic, output_topic=f"{topic}.scores", alerts_topic=f"{topic}.alerts", group_id=group,
        changelog_topic=f"{topic}.changelog", models_dir=MODELS, execution_providers=["cpu"],
        kafka=KafkaSettings(bootstrap_servers=bootstrap), metrics=MetricsSettings(host="127.0.0.1", port=0),
        runtime=RuntimeSettings(session_timeout_ms=6000),
    )  # fmt: skip


def sim_payments(n: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    stream = make_stream("payments", mix=ATTACK_HEAVY)  # the demo's shop, with 13x the attacks
    return list(stream.iter_dicts(n))


def records(rows: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return [(r["user_id"].encode(), json.dumps(r).encode()) for r in rows]


BAD: dict[str, tuple[dict[str, Any], str, str]] = {
    "negative amount": ({"amount": -12.5}, "invalid_value", "amount"),
    "unknown currency": ({"currency": "XYZ"}, "invalid_value", "currency"),
    "missing field": ({"device_id": None}, "missing_field", "device_id"),
}


def bad_records(template: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    out = []
    for change, _, _ in BAD.values():
        event = {k: v for k, v in {**template, **change}.items() if v is not None}
        out.append((template["user_id"].encode(), json.dumps(event).encode()))
    return out


def by_topic(out: list[Collected]) -> dict[str, list[Collected]]:
    grouped: dict[str, list[Collected]] = {}
    for r in out:
        grouped.setdefault(r.topic, []).append(r)
    return grouped


def test_one_score_per_payment_alerts_for_attacks_bad_input_dead_lettered(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory
) -> None:
    topic = topic_factory(partitions=3)
    rows = sim_payments(6000)
    produce(kafka_bootstrap, topic, records([e for e, _ in rows]) + bad_records(rows[0][0]))
    settings = fraud_settings(kafka_bootstrap, topic, group_id_factory())
    with service_in_thread(settings, FraudScorer(settings)):
        # Alerts are extra records: count scores and dead letters, or the wait can end (and the
        # service stop) with the last scores still unread.
        def complete(rs: list[Collected]) -> bool:
            scored = sum(r.topic == f"{topic}.scores" for r in rs)
            return scored >= len(rows) and sum(r.topic == f"{topic}.dlq" for r in rs) >= len(BAD)

        out = by_topic(collect(kafka_bootstrap, [f"{topic}.scores", f"{topic}.alerts", f"{topic}.dlq"],
                               complete, timeout_s=120))
        time.sleep(1.0)
    scores = [FraudScore.model_validate_json(r.value or b"") for r in out[f"{topic}.scores"]]
    assert sorted(s.txn_id for s in scores) == sorted(e["txn_id"] for e, _ in rows), "one score per payment"
    truth = {e["txn_id"]: t for e, t in rows}
    alerts = [FraudScore.model_validate_json(r.value or b"") for r in out.get(f"{topic}.alerts", [])]
    assert {a.txn_id for a in alerts} == {s.txn_id for s in scores if s.decision == "decline"}
    precision = sum(truth[a.txn_id]["is_fraud"] for a in alerts) / max(len(alerts), 1)
    assert precision >= 0.9, f"only {precision:.0%} of alerts are fraud"
    # Velocity bursts are not asserted: in the first minutes of a shop no user has a history
    # to burst against (held-out recall, later in the day, is in docs/fraud.md).
    for attack, share in (("card_testing", 0.7), ("account_takeover", 0.2)):
        episodes = {t["episode"] for _, t in rows if t["attack_type"] == attack}
        caught = {truth[a.txn_id]["episode"] for a in alerts if truth[a.txn_id]["attack_type"] == attack}
        assert len(caught) >= share * len(episodes), f"{attack}: alerts for {len(caught)} of {len(episodes)}"
    assert all(a.reasons for a in alerts), "every alert says why"
    dead = out[f"{topic}.dlq"]
    assert len(dead) == len(BAD)
    reasons = {r.headers[h.ERROR_REASON].decode() for r in dead}
    assert reasons == {reason for _, reason, _ in BAD.values()}
    messages = " ".join(r.headers[h.ERROR_MESSAGE].decode() for r in dead)
    assert all(field in messages for _, _, field in BAD.values())


def burst(user: str, n: int, t0: int) -> list[dict[str, Any]]:
    """A card-testing burst: tiny amounts every 8 s from a new device abroad."""
    return [{
        "txn_id": f"burst-{user}-{i}", "user_id": user, "card_id": f"{user}-c", "amount": 1.5 + i / 10,
        "currency": "EUR", "merchant_id": "m00001", "merchant_category": "digital_goods", "device_id": "dfraud",
        "ip_country": "BR", "card_bin": "455555", "channel": "web", "ts_ms": t0 + i * 8_000,
    } for i in range(n)]  # fmt: skip


def expected_scores(history: list[dict[str, Any]], payments: list[dict[str, Any]]) -> list[FraudScore]:
    """What one uninterrupted scorer (no restart) says about the burst."""
    scorer = FraudScorer(FraudSettings(models_dir=MODELS, execution_providers=["cpu"]))
    scorer.load(LoadContext(settings=scorer.settings, state=StateStore()))
    results = scorer.score(events([Transaction.model_validate(e) for e in history + payments]))
    return scores_of(results)[len(history) :]


def test_a_burst_straddling_a_restart_is_still_caught(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory, tmp_path: Path
) -> None:
    topic = topic_factory(partitions=2)
    env = {
        "INPUT_TOPIC": topic, "OUTPUT_TOPIC": f"{topic}.scores", "ALERTS_TOPIC": f"{topic}.alerts",
        "GROUP_ID": group_id_factory(), "CHANGELOG_TOPIC": f"{topic}.changelog", "MODELS_DIR": str(MODELS),
        "KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap, "RUNTIME__SESSION_TIMEOUT_MS": "6000",
        "EXECUTION_PROVIDERS": '["cpu"]',
    }  # fmt: skip
    user, t0 = "u-restart", 1_704_200_000_000
    history = [{**p, "txn_id": f"h{i}", "amount": 40.0, "device_id": "dhome", "ip_country": "DE",
                "merchant_category": "grocery", "ts_ms": t0 - (10 - i) * 3_600_000}
               for i, p in enumerate(burst(user, 5, t0))]  # fmt: skip
    payments = burst(user, 6, t0)
    first, second = history + payments[:3], payments[3:]
    with ServiceProcess("fraud", env, tmp_path / "fraud.log") as service:
        service.wait_ready(90)
        produce(kafka_bootstrap, topic, records(first))
        collect(kafka_bootstrap, [f"{topic}.scores"], lambda rs: len(rs) >= len(first), timeout_s=60)
        time.sleep(1.0)  # the changelog write and offset commit follow the acknowledged scores
        service.kill()
    with ServiceProcess("fraud", env, tmp_path / "fraud.log") as service:
        service.wait_ready(90)
        produce(kafka_bootstrap, topic, records(second))
        wanted = {p["txn_id"] for p in second}
        out = collect(kafka_bootstrap, [f"{topic}.scores"],
                      lambda rs: wanted <= {json.loads(r.value or b"{}")["txn_id"] for r in rs}, timeout_s=60)
    got = {s.txn_id: s for s in (FraudScore.model_validate_json(r.value or b"") for r in out)}
    want = expected_scores(history, payments)
    for w in want[3:]:
        assert got[w.txn_id].probability == pytest.approx(w.probability, abs=1e-5), "state survived the restart"
        assert got[w.txn_id].decision == w.decision
    assert got[payments[-1]["txn_id"]].decision == "decline", "the burst is caught after the restart"
    amnesiac = expected_scores([], second)  # what a restart that lost the state would say
    assert abs(amnesiac[0].probability - got[second[0]["txn_id"]].probability) > 0.1
