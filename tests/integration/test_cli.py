"""The ``shopstream`` command as people use it: exit codes, produce → tail, DLQ inspect and redrive."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from shared.runtime.echo import EchoScorer
from tests.integration.test_runtime_behaviour import echo_settings
from tools.supervisor import REPO_ROOT, collect, produce, service_in_thread


def shopstream(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "tools.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT, env=env)


@pytest.mark.parametrize("args", [
    ["produce", "nosuch"],
    ["produce", "payments", "--rate", "-1"],
    ["produce", "payments", "--bad-fraction", "2"],
    ["serve"],
    ["serve", "nosuch"],
    ["frobnicate"],
])
def test_bad_arguments_exit_with_2_and_say_why(args: list[str]) -> None:
    result = shopstream(*args)
    assert result.returncode == 2
    assert "error" in result.stderr.lower()


def test_help_lists_every_command() -> None:
    result = shopstream("--help")
    assert result.returncode == 0
    for command in ("serve", "demo", "produce", "tail", "dlq", "topics", "broker", "export", "bench"):
        assert command in result.stdout


@pytest.mark.integration
def test_produce_then_tail_round_trip(kafka_bootstrap: str, topic_factory) -> None:
    topic = topic_factory(partitions=2)
    produced = shopstream("produce", "payments", "--count", "40", "--rate", "0", "--topic", topic,
                          "-b", kafka_bootstrap, "--quiet")
    assert produced.returncode == 0, produced.stderr
    assert "produced 40 events (0 failed)" in produced.stdout
    tailed = shopstream("tail", topic, "--from-beginning", "--json", "--max", "40", "-b", kafka_bootstrap)
    assert tailed.returncode == 0, tailed.stderr
    events = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert len(events) == 40 and all("txn_id" in e and e["amount"] > 0 for e in events)


@pytest.mark.integration
def test_dlq_inspect_and_redrive_after_a_fix(kafka_bootstrap: str, topic_factory, group_id_factory) -> None:
    topic = topic_factory(partitions=2)
    big = [(f"u{i}".encode(), json.dumps({"id": f"u{i}", "payload": "x" * 400}).encode()) for i in range(20)]
    small = [(f"s{i}".encode(), json.dumps({"id": f"s{i}"}).encode()) for i in range(20)]
    produce(kafka_bootstrap, topic, big + small)
    strict = echo_settings(kafka_bootstrap, topic, group_id_factory(), max_message_bytes=200)
    with service_in_thread(strict, EchoScorer()):
        collect(kafka_bootstrap, [f"{topic}.out", f"{topic}.dlq"], lambda rs: len(rs) >= 40, timeout_s=60)

    inspected = shopstream("dlq", "inspect", topic, "-b", kafka_bootstrap)
    assert inspected.returncode == 0, inspected.stderr
    assert "20 dead letters" in inspected.stdout and "oversized: 20" in inspected.stdout

    dry = shopstream("dlq", "redrive", topic, "--reason", "oversized", "--dry-run", "-b", kafka_bootstrap)
    assert f"would send 20 records to {topic}" in dry.stdout

    fixed = strict.model_copy(update={"runtime": strict.runtime.model_copy(update={"max_message_bytes": 10_000})})
    with service_in_thread(fixed, EchoScorer()):
        sent = shopstream("dlq", "redrive", topic, "--reason", "oversized", "-b", kafka_bootstrap)
        assert f"sent 20 records to {topic}" in sent.stdout, sent.stderr
        out = collect(kafka_bootstrap, [f"{topic}.out"], lambda rs: len(rs) >= 40, timeout_s=60)
    expected = {f"u{i}" for i in range(20)} | {f"s{i}" for i in range(20)}
    assert {json.loads(r.value or b"{}")["id"] for r in out} == expected


def test_malformed_settings_are_a_clean_configuration_error() -> None:
    env_result = subprocess.run(
        [sys.executable, "-m", "tools.cli.main", "serve", "echo"], capture_output=True, text=True, timeout=60,
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "SHOPSTREAM_ECHO_KAFKA__EXTRA": "{bad"},
    )
    assert env_result.returncode == 2
    assert "invalid settings for echo" in env_result.stderr and "Traceback" not in env_result.stderr


def test_export_help_is_the_export_commands_own() -> None:
    result = shopstream("export", "--help")
    assert result.returncode == 0
    assert "--from VERSION" in result.stdout and "--tiny" in result.stdout
