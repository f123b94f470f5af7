"""The Kafka harness fails early and says what to install; its config builder keeps room for more listeners."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.broker.errors import HarnessError
from tools.broker.kafka import ListenerSpec, ensure_kafka_jars
from tools.broker.kafka.config import NodeSpec, server_properties
from tools.broker.kafka.jars import pom_digest
from tools.broker.settings import HarnessSettings


def _fake_tool(folder: Path, name: str, stderr: str) -> None:
    folder.mkdir(exist_ok=True)
    tool = folder / name
    tool.write_text(f"#!/bin/sh\necho '{stderr}' >&2\n")
    tool.chmod(0o755)


@pytest.fixture
def settings(tmp_path: Path) -> HarnessSettings:
    return HarnessSettings(kafka_cache_dir=tmp_path / "cache")


def test_missing_java_names_the_packages_to_install(tmp_path: Path, settings: HarnessSettings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(HarnessError, match=r"`java` was not found.*apt-get install openjdk-17-jre-headless maven"):
        ensure_kafka_jars(settings)


def test_java_11_is_refused_with_the_version_it_found(tmp_path: Path, settings: HarnessSettings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tool(tmp_path / "bin", "java", 'openjdk version "11.0.22" 2024-01-16')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(HarnessError, match=r"needs Java 17\+.*is Java 11.*openjdk-17-jre-headless"):
        ensure_kafka_jars(settings)


def test_missing_maven_is_reported_when_the_jars_are_not_cached(tmp_path: Path, settings: HarnessSettings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tool(tmp_path / "bin", "java", 'openjdk version "17.0.15" 2025-04-15')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(HarnessError, match=r"`mvn` was not found.*apt-get install openjdk-17-jre-headless maven"):
        ensure_kafka_jars(settings)
    assert not (settings.jar_cache_root() / pom_digest() / "lib").exists()


def test_cached_jars_are_used_without_maven(tmp_path: Path, settings: HarnessSettings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tool(tmp_path / "bin", "java", 'openjdk version "21.0.2" 2024-01-16')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    cache = settings.jar_cache_root() / pom_digest()
    (cache / "lib").mkdir(parents=True)
    (cache / "complete").write_text("kafka_2.13-4.1.2.jar\n")
    assert ensure_kafka_jars(settings) == cache / "lib"


def test_extra_listeners_and_overrides_reach_server_properties(tmp_path: Path) -> None:
    spec = NodeSpec(1, 9092, 9093, tmp_path, voters=((1, 9093),),
                    extra_listeners=(ListenerSpec("SASL_SSL", 9094, "SASL_SSL"),),
                    overrides={"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                               "num.io.threads": "1"})
    props = server_properties(spec, size=1)
    assert props["listeners"].endswith(",SASL_SSL://127.0.0.1:9094")
    assert "SASL_SSL:SASL_SSL" in props["listener.security.protocol.map"].split(",")
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["num.io.threads"] == "1"  # overrides win over the harness defaults
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"


def test_three_node_defaults_keep_writes_safe_with_one_node_down(tmp_path: Path) -> None:
    spec = NodeSpec(2, 9192, 9193, tmp_path, voters=((1, 9093), (2, 9193), (3, 9293)))
    props = server_properties(spec, size=3)
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293"


def test_a_listener_may_not_shadow_the_harness_own_names() -> None:
    with pytest.raises(HarnessError, match="PLAINTEXT/CONTROLLER"):
        ListenerSpec("CONTROLLER", 9999)
