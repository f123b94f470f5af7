"""Today's code reproduces the outputs recorded before the hot path was rewritten.

``tests/data/golden/<service>.json.gz`` holds fixed input records (simulated events, some of them
broken) and everything the service published for them: scores, their lineage headers, dead letters
with their reasons and raw bytes, and the final state. They were recorded from the code at commit
0f65bea with ``tests.support.golden`` (support's with its first model, v0001, when the service came);
see its docstring for how to record them again, which should happen only when outputs change on purpose.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import golden

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.parametrize("service", sorted(golden.SCENARIO_OF_SERVICE))
def test_outputs_match_the_golden_run(service: str) -> None:
    inputs, expected = golden.load(service)
    actual = golden.replay(service, inputs, MODELS, golden.recorded_version(expected))
    assert len(actual.outputs) == len(expected.outputs)
    differences = list(golden.numbers_close(expected.outputs, actual.outputs))
    assert differences[:20] == []
    assert list(golden.numbers_close(expected.state, actual.state))[:20] == []


def test_the_comparison_sees_a_changed_score() -> None:
    _, expected = golden.load("fraud")
    changed = golden.GoldenRun([dict(o) for o in expected.outputs], expected.state)
    first_score = next(i for i, o in enumerate(changed.outputs) if o["topic"] == "fraud.scores")
    value = dict(changed.outputs[first_score]["value"])
    value["probability"] = value["probability"] + 2e-5
    changed.outputs[first_score] = {**changed.outputs[first_score], "value": value}
    assert list(golden.numbers_close(expected.outputs, changed.outputs)) != []


def test_every_service_dead_letters_part_of_its_golden_inputs() -> None:
    for service in golden.SCENARIO_OF_SERVICE:
        _, expected = golden.load(service)
        reasons = {o["headers"].get("x-error-reason") for o in expected.outputs if o["topic"].endswith(".dlq")}
        assert {"malformed_json", "missing_field", "invalid_utf8"} <= reasons
