"""The support service against a real broker: intents and escalations, the DLQ, a SIGKILL restart.

The model is a keyword model published into a temporary repository (the first word of a message
names its intent, any other first word leaves the model unsure), so every expected answer is known;
the scorer's text path (tokenizer asset, length groups, ONNX) is the one a trained version takes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from services.support.scorer import SupportScorer
from services.support.settings import SupportSettings
from shared.models.repository import ModelRepository
from shared.schemas import headers as h
from shared.schemas.support import SupportEscalation, SupportIntent
from shared.settings import KafkaSettings, MetricsSettings, RuntimeSettings
from tests.support.factories import GroupIdFactory, TopicFactory
from tests.support.tiny_support_model import publish_keyword_support
from tools.supervisor import Collected, ServiceProcess, collect, produce, service_in_thread, wait_until

pytestmark = pytest.mark.integration

T0 = 1_760_000_000_000
TEXTS = ("card has not arrived", "payment was declined twice", "transfer is so slow", "top up failed",
         "exchange rate", "why is it so slow")  # fmt: skip


def message(i: int, customer: str, text: str, ts_ms: int | None = None) -> dict[str, Any]:
    return {"message_id": f"m{i}", "customer_id": customer, "channel": "app", "language": "en", "text": text,
            "ts_ms": T0 + i * 1000 if ts_ms is None else ts_ms}  # fmt: skip


def records(rows: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return [(r["customer_id"].encode(), json.dumps(r).encode()) for r in rows]


BAD: dict[str, tuple[bytes, str]] = {
    "control character": (json.dumps(message(900, "c-bad", "my card\x07 rings")).encode(), "invalid_value"),
    "overlong": (json.dumps(message(901, "c-bad", "card " * 300)).encode(), "invalid_value"),
    "invalid utf-8": (json.dumps(message(902, "c-bad", "card ok")).encode().replace(b"ok", b"o\xffk"), "invalid_utf8"),
    "missing field": (json.dumps({k: v for k, v in message(903, "c-bad", "card").items() if k != "language"}).encode(),
                      "missing_field"),
}  # fmt: skip


@pytest.fixture
def models(tmp_path: Path) -> Path:
    publish_keyword_support(ModelRepository(tmp_path / "models"))
    return tmp_path / "models"


def support_settings(bootstrap: str, topic: str, group: str, models: Path) -> SupportSettings:
    return SupportSettings(
        input_topic=topic, output_topic=f"{topic}.intents", escalations_topic=f"{topic}.escalations",
        config_topic=f"{topic}.config", group_id=group, changelog_topic=f"{topic}.changelog", models_dir=models,
        execution_providers=["cpu"], kafka=KafkaSettings(bootstrap_servers=bootstrap),
        metrics=MetricsSettings(host="127.0.0.1", port=0), runtime=RuntimeSettings(session_timeout_ms=6000),
    )  # fmt: skip


def by_topic(out: list[Collected]) -> dict[str, list[Collected]]:
    grouped: dict[str, list[Collected]] = {}
    for r in out:
        grouped.setdefault(r.topic, []).append(r)
    return grouped


def test_messages_become_intents_and_escalations_and_bad_ones_go_to_the_dlq_with_reasons(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory, models: Path
) -> None:
    topic = topic_factory(partitions=3)
    config = topic_factory(partitions=1, config={"cleanup.policy": "compact"})
    good = [message(i, f"c{i % 20}", TEXTS[i % len(TEXTS)]) for i in range(120)]
    good += [message(200 + i, "c-repeat", "card still missing", T0 + i * 3_600_000) for i in range(3)]
    bad = [(b"c-bad", raw) for raw, _ in BAD.values()]
    rows = records(good)
    produce(kafka_bootstrap, topic, rows[:60] + bad + rows[60:])  # bad records between good neighbours
    produce(kafka_bootstrap, config, [(b"queues", json.dumps({"map": {"card_arrival": "deliveries"}}).encode())])
    settings = support_settings(kafka_bootstrap, topic, group_id_factory(), models).model_copy(
        update={"config_topic": config})
    outputs = [f"{topic}.intents", f"{topic}.escalations", f"{topic}.dlq"]
    with service_in_thread(settings, SupportScorer(settings)):
        def complete(rs: list[Collected]) -> bool:
            return (sum(r.topic == outputs[0] for r in rs) >= len(good)
                    and sum(r.topic == outputs[2] for r in rs) >= len(BAD))  # fmt: skip

        out = by_topic(collect(kafka_bootstrap, outputs, complete, timeout_s=60))
        time.sleep(1.0)  # escalations are extra records of the same units
        out[outputs[1]] = collect(kafka_bootstrap, [outputs[1]], lambda rs: False, timeout_s=3)
    intents = {i.message_id: i for i in (SupportIntent.model_validate_json(r.value or b"") for r in out[outputs[0]])}
    assert sorted(intents) == sorted(m["message_id"] for m in good), "one intent per good message"
    assert all(r.key == intents[json.loads(r.value or b"{}")["message_id"]].customer_id.encode()
               for r in out[outputs[0]])  # fmt: skip
    for m in good:
        got = intents[m["message_id"]]
        first = m["text"].split()[0]
        expected = {"card": ("card_arrival", "deliveries"), "payment": ("declined_card_payment", "payments"),
                    "transfer": ("transfer_timing", "transfers"), "top": ("top_up_failed", "top_up"),
                    "exchange": ("exchange_rate", "exchange")}.get(first)  # fmt: skip
        if expected is None:
            assert got.escalate and "low_confidence" in got.escalation_reasons, m
        else:
            assert (got.intent, got.queue) == expected, "routing follows the config topic's override"
    repeat = [intents[f"m{200 + i}"] for i in range(3)]
    assert [r.escalation_reasons for r in repeat] == [(), (), ("repeated_problem",)]
    escalations = [SupportEscalation.model_validate_json(r.value or b"") for r in out[outputs[1]]]
    assert sorted(e.message_id for e in escalations) == sorted(i.message_id for i in intents.values() if i.escalate)
    assert next(e for e in escalations if e.message_id == "m202").repeat_count == 3
    dead = out[outputs[2]]
    assert sorted(r.headers[h.ERROR_REASON].decode() for r in dead) == sorted(reason for _, reason in BAD.values())
    assert all(r.headers[h.SERVICE] == b"support" and r.headers[h.ERROR_MESSAGE] for r in dead)


def test_a_sigkill_restart_keeps_each_customers_recent_problems(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory, models: Path,
    tmp_path: Path,
) -> None:
    topic = topic_factory(partitions=2)
    env = {
        "INPUT_TOPIC": topic, "OUTPUT_TOPIC": f"{topic}.intents", "ESCALATIONS_TOPIC": f"{topic}.escalations",
        "CONFIG_TOPIC": f"{topic}.config", "GROUP_ID": group_id_factory(), "CHANGELOG_TOPIC": f"{topic}.changelog",
        "MODELS_DIR": str(models), "KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap, "RUNTIME__SESSION_TIMEOUT_MS": "6000",
        "EXECUTION_PROVIDERS": '["cpu"]', "CONFIG_WAIT_S": "1",
    }  # fmt: skip
    before = [message(i, f"k{i % 2}", "transfer not received", T0 + i * 60_000) for i in range(4)]
    after = [message(10 + i, f"k{i}", "transfer still missing", T0 + 3_600_000) for i in range(2)]
    with ServiceProcess("support", env, tmp_path / "support.log") as service:
        service.wait_ready(60)
        produce(kafka_bootstrap, topic, records(before))
        collect(kafka_bootstrap, [f"{topic}.intents"], lambda rs: len(rs) >= len(before), timeout_s=30)
        time.sleep(1.0)  # the changelog write and offset commit follow the acknowledged intents
        service.kill()
    with ServiceProcess("support", env, tmp_path / "support.log") as service:
        service.wait_ready(60)
        produce(kafka_bootstrap, topic, records(after))
        wanted = {m["message_id"] for m in after}
        out = collect(kafka_bootstrap, [f"{topic}.intents"],
                      lambda rs: wanted <= {json.loads(r.value or b"{}")["message_id"] for r in rs}, timeout_s=30)
        business = ('shopstream_business_support_routed_total{queue="transfers",service="support"} 2.0',
                    'shopstream_business_support_escalations_total{reason="repeated_problem",service="support"} 2.0')
        assert wait_until(lambda: all(line in service.metrics() for line in business), 10), "business metrics"
    got = {i.message_id: i for i in (SupportIntent.model_validate_json(r.value or b"") for r in out)}
    for m in after:  # each customer's third transfer message: two came before the restart
        assert got[m["message_id"]].escalation_reasons == ("repeated_problem",), "state survived the SIGKILL"
    assert not any(got[m["message_id"]].escalate for m in before), "no repeat before the third message"
