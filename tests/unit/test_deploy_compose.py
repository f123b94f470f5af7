"""docker-compose.yml: the stack a user starts with one command comes up in order, every service
reads its environment into the settings the code expects, and Prometheus scrapes each one."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.registry import SHOP_SERVICES

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy"))

import catalog  # noqa: E402

COMPOSE_NAMES = {"recommendation": "recommendation", "ad_ctr": "ad-ctr", "pricing": "pricing", "fraud": "fraud",
                 "support": "support"}
WITH_OUTCOMES = ("recommendation", "ad_ctr", "pricing", "fraud")
"""The services whose predictions go to the monitor (support's messages have no outcome yet)."""
RUNTIME_NAMES = {**COMPOSE_NAMES, "monitor": "monitor"}
"""Everything ``shopstream serve`` runs: the shop services and the live-quality monitor."""


def services() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return dict(compose["services"])


def test_the_stack_has_broker_topics_services_producer_and_monitoring() -> None:
    assert set(services()) == {"kafka", "topics", *RUNTIME_NAMES.values(), "producer", "prometheus", "grafana"}
    assert set(COMPOSE_NAMES) == set(SHOP_SERVICES)
    assert services()["producer"]["profiles"] == ["producer"]


def test_kafka_is_a_single_kraft_node_with_a_healthcheck() -> None:
    kafka = services()["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.1.")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # the initialiser creates them
    assert "kafka-broker-api-versions.sh" in kafka["healthcheck"]["test"][1]


def test_every_shopstream_command_parses_with_the_real_cli() -> None:
    from tools.cli.main import build_parser

    parser = build_parser()
    for name in ("topics", *RUNTIME_NAMES.values(), "producer"):
        args = parser.parse_args(services()[name]["command"])
        assert callable(args.handler), name
    for name in ("topics", "producer"):
        assert parser.parse_args(services()[name]["command"]).bootstrap_servers == "kafka:9092"


@pytest.mark.parametrize("name", sorted(RUNTIME_NAMES))
def test_scoring_service_is_hardened_ordered_and_healthchecked(name: str) -> None:
    svc = services()[RUNTIME_NAMES[name]]
    assert svc["command"] == ["serve", name]
    assert (svc["user"], svc["read_only"], svc["cap_drop"]) == ("10001:10001", True, ["ALL"])
    assert svc["tmpfs"] == ["/tmp"]
    assert svc["depends_on"] == {"kafka": {"condition": "service_healthy"},
                                 "topics": {"condition": "service_completed_successfully"}}
    assert "/readyz" in svc["healthcheck"]["test"][-1]
    assert int(svc["stop_grace_period"].rstrip("s")) > 20  # runtime.shutdown_deadline_s


def compose_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The service's settings as its container reads them from its compose environment."""
    cls = catalog.settings_class(name)
    env = services()[RUNTIME_NAMES[name]]["environment"]
    assert all(key.startswith(catalog.env_prefix(cls)) for key in env)
    for key in [k for k in os.environ if k.startswith("SHOPSTREAM_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    return cls()


@pytest.mark.parametrize("name", sorted(RUNTIME_NAMES))
def test_service_environment_lands_in_its_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = services()[RUNTIME_NAMES[name]]
    settings = compose_settings(name, monkeypatch)
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.log_json is True
    (port,) = [p for p in svc["ports"]]
    assert port.split(":")[1] == str(settings.metrics.port)
    assert f"127.0.0.1:{settings.metrics.port}/readyz" in svc["healthcheck"]["test"][-1]
    mounts = {v.split(":")[1]: v for v in svc["volumes"]}
    assert all(v.endswith(":ro") for v in mounts.values())
    if name in COMPOSE_NAMES:
        assert str(settings.models_dir) in mounts


def test_every_shop_service_feeds_the_monitor_and_the_producer_sends_outcomes_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tools.cli.main import build_parser

    feedback = compose_settings("monitor", monkeypatch).input_topic
    assert (feedback, compose_settings("monitor", monkeypatch).output_topic) == ("shop.feedback", "shop.quality")
    assert {compose_settings(name, monkeypatch).feedback_topic for name in WITH_OUTCOMES} == {feedback}
    assert compose_settings("support", monkeypatch).feedback_topic is None
    producer = build_parser().parse_args(services()["producer"]["command"])
    assert producer.feedback_topic == feedback
    topics = build_parser().parse_args(services()["topics"]["command"])
    assert set(topics.services) == set(RUNTIME_NAMES), "the initialiser creates the monitor's topics too"
    assert services()["producer"]["depends_on"]["monitor"] == {"condition": "service_healthy"}


def test_each_shopstream_container_runs_the_image_that_holds_its_command() -> None:
    """Services and the topic initialiser run the serving image; `produce` needs sim/ and
    tools/loadgen, which only the tools image holds. Both are hardened alike."""
    import image_contents

    targets = image_contents.stages(ROOT / "Dockerfile")
    serving = {"topics", *RUNTIME_NAMES.values()}
    for name in serving:
        assert services()[name]["build"] == {"context": ".", "target": "cpu"}, name
    producer = services()["producer"]
    assert producer["build"] == {"context": ".", "target": "tools"} and "tools" in targets
    assert producer["command"][0] == "produce"
    assert producer["image"] != services()["fraud"]["image"], "two images need two names"
    for name in (*serving, "producer"):
        svc = services()[name]
        assert (svc["user"], svc["read_only"], svc["cap_drop"], svc["tmpfs"]) == ("10001:10001", True, ["ALL"],
                                                                                ["/tmp"]), name
        assert svc["security_opt"] == ["no-new-privileges:true"], name


def test_host_ports_do_not_collide() -> None:
    host_ports = [p.split(":")[0] for s in services().values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports))


def test_bind_mounts_exist_in_the_repository() -> None:
    for name, svc in services().items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists() or source == "./models", f"{name}: {source} missing"


def test_prometheus_scrapes_each_service_on_its_metrics_port_with_its_service_label(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "shopstream")
    targets = {sc["targets"][0]: sc["labels"]["service"] for sc in job["static_configs"]}
    for key in [k for k in os.environ if k.startswith("SHOPSTREAM_")]:
        monkeypatch.delenv(key)
    expected = {}
    for name, compose_name in RUNTIME_NAMES.items():
        settings = catalog.settings_class(name)()
        expected[f"{compose_name}:{settings.metrics.port}"] = settings.service_name
    assert targets == expected
    mounts = services()["prometheus"]["volumes"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in mounts
