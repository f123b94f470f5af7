"""The Go example producer (examples/producer-go) without a broker: its schema check agrees with the Python
models, and bad flags exit 2. tests/integration/test_example_producer.py has the pricing service score it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shared.schemas.base import decode
from shared.schemas.payments import Transaction
from shared.schemas.pricing import PricingRequest
from tests.support.go_producer import build_producer, run_producer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def producer_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_producer(tmp_path_factory.mktemp("producer-go"))


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
