"""Every output a service encodes, sampled from the golden inputs, obeys the published schemas.

Scorers write their outputs in bulk from columns (``shared.schemas.rows.RowEncoder``) rather than
through one pydantic model per record, so this checks the bytes themselves: against the JSON
Schema file downstream readers get (``schemas/json``) and against the pydantic model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shared.schemas.registry import JSON_SCHEMA_DIR, by_topic
from tests.support import golden

MODELS = Path(__file__).resolve().parents[2] / "models"
SAMPLE_EVERY = 7
"""Every 7th output is checked (all of them would take longer and find nothing more)."""


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((JSON_SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return schema


@pytest.mark.parametrize("service", sorted(golden.SCENARIO_OF_SERVICE))
def test_sampled_outputs_obey_the_published_schemas(service: str) -> None:
    inputs, _ = golden.load(service)
    outputs = [o for o in golden.replay(service, inputs, MODELS).outputs if not o["topic"].endswith(".dlq")]
    assert len(outputs) > 100
    checked: dict[str, int] = {}
    for output in outputs[::SAMPLE_EVERY]:
        model = by_topic(output["topic"]).model
        jsonschema.validate(output["value"], _schema(model.__name__))
        model.model_validate_json(json.dumps(output["value"]))
        checked[output["topic"]] = checked.get(output["topic"], 0) + 1
    assert min(checked.values()) > 5, checked
