"""RowEncoder: the bytes a batch encodes from columns are what the output model would have written."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from shared.errors import ScoringError
from shared.schemas.payments import FraudScore
from shared.schemas.registry import JSON_SCHEMA_DIR
from shared.schemas.rows import Column, Constant, RowEncoder


def _columns() -> dict[str, Column]:
    return {
        "txn_id": ["t1", "t2"],
        "user_id": ["u1", "u2"],
        "probability": np.array([0.25, 0.875], dtype=np.float32),
        "decision": ["approve", "decline"],
        "reasons": [(), ("amount_vs_user_median", "new_device")],
        "model_version": Constant("v0003"),
        "event_ts_ms": np.array([1_700_000_000_000, 1_700_000_000_001]),
    }


def test_rows_are_the_models_own_json() -> None:
    encoded = RowEncoder(FraudScore).encode(2, _columns())
    expected = [
        FraudScore(txn_id="t1", user_id="u1", probability=0.25, decision="approve", reasons=(),
                   model_version="v0003", event_ts_ms=1_700_000_000_000),
        FraudScore(txn_id="t2", user_id="u2", probability=0.875, decision="decline",
                   reasons=("amount_vs_user_median", "new_device"), model_version="v0003",
                   event_ts_ms=1_700_000_000_001),
    ]
    assert encoded == [m.model_dump_json().encode() for m in expected]
    schema = json.loads((JSON_SCHEMA_DIR / "FraudScore.json").read_text())
    for record in encoded:
        jsonschema.validate(json.loads(record), schema)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"probability": np.array([0.5, np.nan])}, "non-finite"),
        ({"probability": [0.5, float("inf")]}, "non-finite"),
        ({"txn_id": ["t1"]}, "1 values for 2 records"),
        ({"colour": ["red", "blue"]}, "no field"),
        ({"probability": [1.5, 0.5]}, "breaks its schema"),
    ],
)
def test_a_batch_the_schema_refuses_fails_loudly(change: dict[str, Column], message: str) -> None:
    with pytest.raises(ScoringError, match=message):
        RowEncoder(FraudScore).encode(2, {**_columns(), **change})


def test_a_required_field_left_out_fails() -> None:
    columns = _columns()
    del columns["decision"]
    with pytest.raises(ScoringError, match="decision is required"):
        RowEncoder(FraudScore).encode(2, columns)
