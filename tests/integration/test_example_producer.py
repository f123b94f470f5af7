"""The Go example producer (examples/producer-go): its events pass the generated JSON Schemas,
the Python models agree, and the pricing service scores them off a real broker."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from services import pricing
from services.pricing.settings import PricingSettings
from shared.schemas.base import decode
from shared.schemas.payments import Transaction
from shared.schemas.pricing import PricingDecision, PricingRequest
from shared.settings import KafkaSettings, MetricsSettings, RuntimeSettings
from tests.conftest import GroupIdFactory, TopicFactory
from tools.supervisor import REPO_ROOT, collect, service_in_thread

EXAMPLE = REPO_ROOT / "examples" / "producer-go"
SCHEMAS = REPO_ROOT / "schemas" / "json"


@pytest.fixture(scope="module")
def producer_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``go build`` the example once per module (Go's build cache makes rebuilds take ~1 s)."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("the Go toolchain (`go`) is not on PATH; install Go >= 1.26 to test the Go example producer")
    binary = tmp_path_factory.mktemp("producer-go") / "producer-go"
    started = time.monotonic()
    result = subprocess.run([go, "build", "-o", str(binary), "."], cwd=EXAMPLE, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"go build failed:\n{result.stderr}"
    print(f"go build: {time.monotonic() - started:.1f}s")
    return binary


def run_producer(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), "-schemas", str(SCHEMAS), *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize(("kind", "model", "bad_field"), [
    ("pricing", PricingRequest, "/stock"), ("payments", Transaction, "/currency"),
])
def test_schema_check_in_go_agrees_with_the_python_models(
    producer_binary: Path, kind: str, model: type[PricingRequest | Transaction], bad_field: str
) -> None:
    result = run_producer(producer_binary, "-kind", kind, "-count", "30", "-bad-every", "10", "-dry-run")
    assert result.returncode == 0, result.stderr
    events = [decode(model, line) for line in result.stdout.splitlines()]  # raises InvalidEvent if not accepted
    assert len(events) == 27
    rejected = [line for line in result.stderr.splitlines() if line.startswith("rejected ")]
    assert len(rejected) == 3 and all(bad_field in line for line in rejected)


def test_bad_flags_exit_2(producer_binary: Path) -> None:
    assert run_producer(producer_binary, "-kind", "nosuch").returncode == 2
    missing = subprocess.run([str(producer_binary), "-schemas", "/nonexistent"], capture_output=True, text=True)
    assert missing.returncode == 2 and "PricingRequest.json" in missing.stderr


@pytest.mark.integration
def test_pricing_service_scores_the_go_producers_events(
    producer_binary: Path, kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory
) -> None:
    topic = topic_factory(partitions=2)
    result = run_producer(producer_binary, "-brokers", kafka_bootstrap, "-topic", topic, "-count", "60",
                          "-bad-every", "20")
    assert result.returncode == 0, result.stderr
    assert f"produced 57 pricing events to {topic} (rejected 3 invalid)" in result.stdout
    settings: PricingSettings = pricing.SETTINGS_CLASS(
        input_topic=topic, output_topic=f"{topic}.decisions", forecast_topic=f"{topic}.forecasts",
        config_topic=None, group_id=group_id_factory(), changelog_topic=f"{topic}.changelog",
        models_dir=REPO_ROOT / "models", kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
        metrics=MetricsSettings(host="127.0.0.1", port=0), runtime=RuntimeSettings(session_timeout_ms=6000),
        execution_providers=["cpu"],
    )
    with service_in_thread(settings, pricing.create_scorer(settings)):
        out = collect(kafka_bootstrap, [f"{topic}.decisions", f"{topic}.dlq"], lambda rs: len(rs) >= 57,
                      timeout_s=90)
    assert [r.topic for r in out if r.topic.endswith(".dlq")] == []
    decisions = [PricingDecision.model_validate_json(r.value or b"") for r in out]
    assert len(decisions) == 57
    assert {d.sku for d in decisions} <= {f"go-sku{i:05d}" for i in range(60)}
    assert all(d.recommended_price > 0 for d in decisions)
    assert all(json.loads(r.value or b"{}")["sku"] == (r.key or b"").decode() for r in out)
