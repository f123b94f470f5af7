"""The ``shopstream`` command without a broker: exit codes, help, settings errors, an unreachable Kafka."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import shopstream
from tools.cli.topics import deployment_topics

CLOSED = "127.0.0.1:1"
"""Nothing listens on port 1: every connection is refused at once."""


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


def test_malformed_settings_are_a_clean_configuration_error() -> None:
    result = shopstream("serve", "echo", timeout=60, env={"SHOPSTREAM_ECHO_KAFKA__EXTRA": "{bad"})
    assert result.returncode == 2
    assert "invalid settings for echo" in result.stderr and "Traceback" not in result.stderr


def test_export_help_is_the_export_commands_own() -> None:
    result = shopstream("export", "--help")
    assert result.returncode == 0
    assert "--from VERSION" in result.stdout and "--tiny" in result.stdout


def test_topics_create_plans_each_services_config_topic_compacted_on_one_partition() -> None:
    topics = deployment_topics(["pricing", "fraud"], partitions=6)
    assert topics["pricing.config"] == (1, {"cleanup.policy": "compact"})
    assert topics["pricing.requests"][0] == 6 and topics["fraud.alerts"] == (6, {})
    assert all(config == {"cleanup.policy": "compact"} for name, (_, config) in topics.items()
               if name.endswith((".changelog", ".config")))


@dataclass(frozen=True, repr=False)
class Outcome:
    returncode: int | None
    """``None``: still running when the test gave up on it."""
    stderr: str
    seconds: float

    def __repr__(self) -> str:  # short: a hanging command's stderr is thousands of retry lines
        return f"Outcome(exit {self.returncode} after {self.seconds:.1f} s, stderr ends {self.stderr[-300:]!r})"


UNREACHABLE_COMMANDS = {
    "produce": ["produce", "payments", "--count", "10", "--quiet"],
    "tail": ["tail", "fraud.scores"],
    "topics create": ["topics", "create"],
    "dlq inspect": ["dlq", "inspect", "payments.transactions"],
    "dlq redrive": ["dlq", "redrive", "payments.transactions"],
}


def _run_against_closed_port(args: list[str], run_dir: Path) -> Outcome:
    if args[0] == "demo":
        args = [*args, "--run-dir", str(run_dir)]
    started = time.monotonic()
    try:
        result = shopstream(*args, "--bootstrap-servers", CLOSED, timeout=30)
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return Outcome(None, stderr, time.monotonic() - started)
    return Outcome(result.returncode, result.stderr, time.monotonic() - started)


@pytest.fixture(scope="module")
def unreachable_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every Kafka-facing command run against a closed port, three at a time (each waits a few seconds)."""
    commands = {**UNREACHABLE_COMMANDS, "demo": ["demo", "--duration", "5", "--no-ui"]}
    run_dir = tmp_path_factory.mktemp("demo")
    with ThreadPoolExecutor(3) as pool:
        futures = {name: pool.submit(_run_against_closed_port, args, run_dir) for name, args in commands.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("command", [*UNREACHABLE_COMMANDS, "demo"])
def test_an_unreachable_kafka_is_named_with_the_reason_and_exit_1(
    command: str, unreachable_outcomes: dict[str, Outcome]
) -> None:
    outcome = unreachable_outcomes[command]
    assert outcome.returncode == 1, f"{command}: {outcome!r}"
    assert outcome.seconds < 15, f"{command} took {outcome.seconds:.1f} s to give up"
    assert f"cannot reach Kafka at {CLOSED}" in outcome.stderr and "Connection refused" in outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert "%3|" not in outcome.stderr, "librdkafka's retry log lines bury the reason"
